"""Reading the YAML files users write (recipes, study plans): a mapping, or one line that says
what is wrong with the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from specrobust.errors import SpecRobustError, quoted
from specrobust.storage import read_yaml


def read_mapping(path: Path, *, kind: str, what: str, holds: str) -> dict:
    """The mapping in ``path``. ``kind`` names the file in messages ("config file"), ``what``
    is what such a file is ("a recipe"), ``holds`` what its mapping holds ("config
    sections")."""
    try:
        if path.is_dir():
            raise SpecRobustError(f"{kind} {path} is a directory; {what} is a YAML file")
        data = read_yaml(path, kind)  # a FIFO or device: refused by type, never read
    except FileNotFoundError:
        raise SpecRobustError(f"{kind} {path} does not exist") from None
    except OSError as error:  # a name too long, a loop of links, no permission
        raise SpecRobustError(f"{kind} {quoted(str(path))}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SpecRobustError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") \
            from None
    except UnicodeDecodeError:
        raise SpecRobustError(f"{path} is not a text file; {what} is YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecRobustError(f"{path} must hold a mapping of {holds}")
    return data
