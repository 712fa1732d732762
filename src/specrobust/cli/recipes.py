"""`specrobust recipes [show NAME]`: the shipped recipes and study plans."""

from __future__ import annotations

import shutil

from specrobust.errors import SpecRobustError


def add(commands) -> None:
    recipes = commands.add_parser(
        "recipes", help="the shipped recipes and study plans; `recipes show NAME` prints one",
        description="Without arguments: one line per shipped recipe and plan. `show NAME`: the "
        "recipe with its bases merged (or the plan), as YAML to copy and edit.")
    recipes.add_argument("action", nargs="?", choices=("show",), help="show one")
    recipes.add_argument("name", nargs="?", help="a recipe's or plan's name")
    recipes.set_defaults(handler=run)


def run(args) -> int:
    from specrobust import recipes
    from specrobust.recipes import listing

    if args.action is None:
        if args.name:
            raise SpecRobustError(f"did you mean `specrobust recipes show {args.name}`?")
        rows = listing.summaries()
        width = max(len(row.name) for row in rows)
        columns = shutil.get_terminal_size((80, 24)).columns  # 80 where output is not a terminal
        # Two lines a recipe, so that a terminal of 80 columns shows every field.
        print(f"{'recipe':<{width}} {'dataset':<12} {'model':<10} {'method':<15} epochs")
        for row in (r for r in rows if r.kind == recipes.RECIPE):
            print(f"{row.name:<{width}} {row.dataset:<12} {row.model:<10} {row.method:<15} "
                  f"{row.epochs:>6}")
            print(_fit(f"    {row.purpose}", columns))
        print("\nstudy plan: methods; seeds")
        for row in (r for r in rows if r.kind != recipes.RECIPE):
            print(_fit(f"{row.name}: {row.method}; {row.epochs}", columns))
            print(_fit(f"    {row.purpose}", columns))
        return 0
    if not args.name:
        raise SpecRobustError("`specrobust recipes show` needs a recipe's or plan's name")
    print(listing.show(args.name), end="")
    return 0


def _fit(line: str, columns: int) -> str:
    """``line`` cut to the terminal's width, the cut marked."""
    return line if len(line) <= columns else line[:max(columns, 40) - 1] + "…"
