"""User code that builds a model: ``path/to/arch.py:factory`` or ``package.module:factory``.

Running that code is the point of naming it (it is the user's own); what it raises, including
``SystemExit`` and other ``BaseException``s, ends in one line instead of ending specrobust.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from specrobust.errors import SpecRobustError, quoted, run_user_code
from specrobust.files.storage import loads_json


def load_factory(text: str):
    """The callable ``path/to/file.py:name`` or ``package.module:name`` names."""
    location, _, attribute = text.rpartition(":")
    if not location or not attribute.isidentifier():
        raise SpecRobustError(f"--model {quoted(text)}: name user code as path/to/arch.py:factory "
                              "or package.module:factory")
    if location.endswith(".py") or "/" in location or "\\" in location:
        file = Path(location)
        if not file.is_file():
            raise SpecRobustError(f"--model {quoted(text)}: {file} does not exist")
        module_name = f"specrobust_user_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            run_user_code(lambda: spec.loader.exec_module(module), f"running {file} failed (", ")")
        except SpecRobustError:
            sys.modules.pop(module_name, None)
            raise
    else:
        module = run_user_code(lambda: importlib.import_module(location),
                               f"--model {quoted(text)}: cannot import {location} (", ")")
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise SpecRobustError(f"--model {quoted(text)}: {location} has no callable {attribute}")
    return factory


def call_factory(text: str, arguments: dict) -> nn.Module:
    factory = load_factory(text)
    net = run_user_code(lambda: factory(**arguments), f"--model {quoted(text)} raised ")
    if not isinstance(net, nn.Module):
        raise SpecRobustError(f"--model {quoted(text)} returned a {type(net).__name__}, not a "
                              "torch.nn.Module")
    return net.cpu().eval()


def parse_model_args(text: str | None) -> dict | None:
    """``--model-args '{"depth": 28}'``: a JSON object of keyword arguments."""
    if text is None:
        return None
    try:
        arguments = loads_json(text, "--model-args")
    except ValueError as error:
        raise SpecRobustError(f"--model-args must be a JSON object such as "
                              f"'{{\"depth\": 28}}' ({getattr(error, 'msg', error)})") from None
    if not isinstance(arguments, dict):
        raise SpecRobustError(f"--model-args must be a JSON object, got {quoted(text)}")
    return arguments
