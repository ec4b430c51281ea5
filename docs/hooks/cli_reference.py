"""MkDocs hook: the command-line reference, generated from gankit's own argparse parsers.

docs/reference/cli.md holds a marker; at build time it is replaced by `cli_reference()`:
every subcommand of `gankit.cli.build_parser(model)` with every flag, its help text and its
default, for every model that `train --model` (and `impute --model`) accepts. Nothing is
kept by hand, so the page cannot drift from the code. tests/test_docs.py imports this module
and checks that every option string of every parser appears in the generated text.

Layout of the generated text, which tests/test_docs.py relies on:

- one section per subcommand, headed `## gankit SUB {#SUB}`; a model's own flags (those that
  differ between the models `SUB --model` accepts) in `### ... {#SUB-MODEL}` under it;
- one table row per argparse action, its first cell the option strings (or a positional's
  name) as code spans: | `--steps N` | help |.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- gankit-cli-reference -->"
PAGE = "reference/cli.md"
WIDTH = 88   # usage lines are wrapped at this width, whatever the terminal

# The docs describe the working tree they are built from, not an installed gankit.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- what the parsers hold ----------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _model_choices(sub: argparse.ArgumentParser) -> list[str]:
    """The names a subcommand's --model accepts ([] when it has none)."""
    for action in sub._actions:
        if "--model" in action.option_strings and action.choices:
            return list(action.choices)
    return []


def parsers() -> tuple[argparse.ArgumentParser, dict[str, dict[str | None, argparse.ArgumentParser]]]:
    """(the whole parser for the default model, {subcommand: {model: its subparser}}).

    A subcommand with a --model gets one parser per model it accepts (build_parser(model)
    offers that model's flags); every other subcommand one, under the key None."""
    from gankit.cli import build_parser

    top = build_parser(None)
    result: dict[str, dict[str | None, argparse.ArgumentParser]] = {}
    for name, sub in _subparsers(top).choices.items():
        models = _model_choices(sub)
        result[name] = ({m: _subparsers(build_parser(m)).choices[name] for m in models}
                        if models else {None: sub})
    return top, result


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of every action of `parser` (-h and --help included)."""
    return [s for a in parser._actions for s in a.option_strings]


# --- Markdown ---------------------------------------------------------------------------------

def _escape(text: str) -> str:
    """Help text for a table cell: backtick spans kept as code, Markdown's and HTML's
    special characters outside them escaped, and pipes escaped everywhere (a table cell)."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:   # a code span: Markdown shows it literally, except for the table's pipes
            out.append(part.replace("|", r"\|"))
            continue
        part = part.replace("\\", "\\\\")
        for ch in "*_[]|":
            part = part.replace(ch, "\\" + ch)
        out.append(part.replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


def _formatter(parser: argparse.ArgumentParser) -> argparse.HelpFormatter:
    return parser.formatter_class(prog=parser.prog, width=WIDTH)


def _names(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The first cell: `--steps N`, or `--offline`, `--no-offline`, or a positional's name."""
    fmt = _formatter(parser)
    if not action.option_strings:
        return f"`{fmt._metavar_formatter(action, action.dest)(1)[0]}`"
    if action.nargs == 0:
        return ", ".join(f"`{s}`" for s in action.option_strings)
    args = fmt._format_args(action, action.dest.upper())
    return ", ".join(f"`{s} {args}`" for s in action.option_strings)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text as `--help` shows it (%(default)s and the like expanded), with the
    default added where the text does not give it, and required options marked."""
    if action.help is None:
        text = ""
    else:
        try:
            text = _formatter(parser)._expand_help(action)
        except (KeyError, TypeError, ValueError):
            text = action.help
    text = " ".join(text.split())
    quiet = (argparse.SUPPRESS, None, False)
    if ("default" not in text and action.option_strings and action.nargs != 0
            and action.default not in quiet):
        text += f" (default: {action.default})"
    cell = _escape(text) or "&nbsp;"
    if action.required and action.option_strings:
        cell = "**Required.** " + cell
    return cell


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return f"| {_names(parser, action)} | {_help(parser, action)} |"


def _groups(parser: argparse.ArgumentParser) -> list[tuple[argparse._ArgumentGroup, list[argparse.Action]]]:
    """(group, its actions) in --help's order, empty groups left out; SUPPRESSed help too."""
    return [(g, [a for a in g._group_actions if a.help != argparse.SUPPRESS])
            for g in parser._action_groups
            if any(a.help != argparse.SUPPRESS for a in g._group_actions)]


def _table(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup,
           actions: list[argparse.Action], heading: str) -> list[str]:
    lines = [heading, ""]
    if group.description:
        lines += [_escape(" ".join(group.description.split())), ""]
    lines += ["| option | what it does |", "|---|---|"]
    lines += [_row(parser, a) for a in actions]
    return lines + [""]


def _usage(parser: argparse.ArgumentParser, actions: list[argparse.Action], more: str = "") -> list[str]:
    fmt = _formatter(parser)
    groups = [g for g in parser._mutually_exclusive_groups
              if all(a in actions for a in g._group_actions)]
    fmt.add_usage(parser.usage, actions, groups, prefix="")
    text = fmt.format_help().rstrip()
    if more:
        text += " " + more
    return ["```text", text, "```", ""]


def _title(group: argparse._ArgumentGroup) -> str:
    title = group.title or "options"
    return {"positional arguments": "Arguments", "options": "Options"}.get(
        title, title[:1].upper() + title[1:])


def _command(name: str, help_line: str, by_model: dict[str | None, argparse.ArgumentParser],
             default_model: str | None) -> list[str]:
    """One subcommand's section: its description and usage, the rows every model shares,
    then each model's own rows (a flag of its own, or one whose text differs)."""
    models = list(by_model)
    base = by_model.get(default_model) or by_model[models[0]]
    shared = set.intersection(*({_row(p, a) for a in p._actions} for p in by_model.values()))

    lines = [f"## gankit {name} {{#{name}}}", ""]
    if help_line:
        lines += [f"*{_escape(help_line)}.*", ""]
    if base.description:
        lines += [_escape(" ".join(base.description.split())), ""]
    kept = [a for a in base._actions if _row(base, a) in shared]
    lines += _usage(base, kept, "[MODEL FLAGS]" if len(models) > 1 else "")
    for group, actions in _groups(base):
        mine = [a for a in actions if _row(base, a) in shared]
        if mine:
            lines += _table(base, group, mine, f"### {_title(group)}")

    if len(models) > 1:
        lines += ["### Each model's flags", "",
                  f"`gankit {name} --model NAME --help` shows them; below, every flag whose "
                  f"text differs between the models ({', '.join(models)}): a model's own "
                  f"settings, and the shared flags whose default it changes.", ""]
        for model in models:
            parser = by_model[model]
            lines += [f"#### `--model {model}` {{#{name}-{model}}}", ""]
            for group, actions in _groups(parser):
                own = [a for a in actions if _row(parser, a) not in shared]
                if own:
                    lines += _table(parser, group, own, f"**{_escape(_title(group))}**")
    return lines


def cli_reference() -> str:
    """The whole generated reference, in Markdown."""
    from gankit.models import DEFAULT

    top, commands = parsers()
    sub = _subparsers(top)
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| [`gankit {n}`](#{n}) | {_escape(helps.get(n, ''))} |" for n in commands]
    lines += ["", "## gankit {#gankit}", ""]
    if top.description:
        lines += [_escape(top.description), ""]
    lines += _usage(top, top._actions)
    for group, actions in _groups(top):
        actions = [a for a in actions if a is not sub]
        if actions:
            lines += _table(top, group, actions, f"### {_title(group)}")
    for name, by_model in commands.items():
        default = DEFAULT if DEFAULT in by_model else next(iter(by_model))
        lines += _command(name, helps.get(name, ""), by_model, default)
    return "\n".join(lines).rstrip() + "\n"


# --- the hook -------------------------------------------------------------------------------

def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError
        raise PluginError(f"docs/{PAGE} lost its marker {MARKER}: the CLI reference would be empty")
    return markdown.replace(MARKER, cli_reference())


if __name__ == "__main__":   # python docs/hooks/cli_reference.py: print the generated text
    print(cli_reference())
