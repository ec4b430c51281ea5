"""The documentation: README's links resolve, the generated CLI reference is complete, and
(slow) the site builds with `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOK = ROOT / "docs" / "hooks" / "cli_reference.py"

# [text](target) and ![alt](target), the target up to a space (a title) or the closing ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _hook():
    spec = importlib.util.spec_from_file_location("gankit_docs_cli_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hook():
    return _hook()


@pytest.fixture(scope="module")
def reference(hook):
    return hook.cli_reference()


def local_links(markdown: str) -> list[str]:
    """The relative link and image targets of a Markdown text (code blocks and inline
    code left out), without their #anchors; web and mail links skipped."""
    text = FENCE.sub("", markdown)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#")[0])
    return targets


def test_link_parser_finds_links_and_images():
    text = ("see [the guide](docs/guide/training.md#resume) and ![a grid](docs/a.png)\n"
            "[web](https://example.org) [here](#top) `[not](a/link.md)`\n"
            "```\n[nor](this.md)\n```\n")
    assert local_links(text) == ["docs/guide/training.md", "docs/a.png"]


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = local_links(readme)
    assert targets, "README.md links nowhere: the parser or the README is broken"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 180, f"README.md has {len(lines)} lines: move detail into docs/"


# --- the generated command-line reference ----------------------------------------------------

def sections(text: str) -> dict[str, str]:
    """{id: text} for every heading with an explicit {#id}; a section runs to the next
    heading of the same or a higher level, so a subcommand's holds its models' too."""
    heads = [(m.start(), len(m.group(1)), m.group(2))
             for m in re.finditer(r"^(#+) .*\{#([\w-]+)\}\s*$", text, re.M)]
    found = {}
    for i, (start, level, key) in enumerate(heads):
        end = next((s for s, lv, _ in heads[i + 1:] if lv <= level), len(text))
        found[key] = text[start:end]
    return found


def listed_options(section: str) -> set[str]:
    """The option strings in the first cell of the section's table rows."""
    found = set()
    for line in section.splitlines():
        m = re.match(r"^\| (.*?) \| ", line)
        if m:
            found.update(span.split(" ")[0] for span in re.findall(r"`([^`]+)`", m.group(1)))
    return found


def missing_options(text: str, hook) -> list[str]:
    """'SUB --model M: --flag' for every option of every parser that the reference does
    not list where it belongs (the subcommand's section, or its model's under it)."""
    top, commands = hook.parsers()
    found = sections(text)
    missing = [f"gankit: {o}" for o in hook.option_strings(top)
               if o not in listed_options(found.get("gankit", ""))]
    for name, by_model in commands.items():
        shared = found.get(name, "")
        own = sections(shared)
        for model, parser in by_model.items():
            where = shared.split("\n### Each model's flags")[0]
            if model is not None:
                where += own.get(f"{name}-{model}", "")
            listed = listed_options(where)
            missing += [f"{name} --model {model}: {o}" if model else f"{name}: {o}"
                        for o in hook.option_strings(parser) if o not in listed]
            positionals = [a for a in parser._actions if not a.option_strings
                           and a.help != "==SUPPRESS==" and not a.choices]
            missing += [f"{name}: positional {a.metavar or a.dest}" for a in positionals
                        if (a.metavar or a.dest) not in listed]
    return missing


def test_reference_covers_every_subcommand_and_model(hook, reference):
    top, commands = hook.parsers()
    from gankit.models import IMPUTERS, SYNTHESIZERS, registered

    assert {"train", "sample", "eval", "impute", "synth", "synth-report", "serve"} <= set(commands)
    assert set(commands["train"]) == set(registered())
    assert set(commands["impute"]) == set(IMPUTERS)
    assert set(commands["synth"]) == set(SYNTHESIZERS)
    found = sections(reference)
    for name, by_model in commands.items():
        assert name in found, f"no section for gankit {name}"
        for model in by_model:
            if model is not None:
                assert f"{name}-{model}" in found, f"no section for gankit {name} --model {model}"


def test_reference_lists_every_flag(hook, reference):
    assert missing_options(reference, hook) == []


def test_reference_check_catches_a_missing_flag(hook, reference):
    """The check above can fail: drop one model flag's row, and one shared flag's."""
    cut = re.sub(r"^\| `--latent-dim N` \|.*\n", "", reference, count=1, flags=re.M)
    assert cut != reference
    assert any(m.endswith(": --latent-dim") for m in missing_options(cut, hook))
    cut = re.sub(r"^\| `--truncation PSI` \|.*\n", "", reference, count=1, flags=re.M)
    assert "sample: --truncation" in missing_options(cut, hook)


def test_reference_shows_help_and_defaults(hook, reference):
    """Help texts come through, with argparse's %(default)s expanded; a model's own
    defaults show in its section."""
    assert "%(" not in reference
    found = sections(reference)
    sample = found["sample"]
    assert "| `--reject-percentile P` |" in sample and "(default: 80)" in sample
    assert "(default: 4.5m)" in found["train-dcgan"]        # dcgan trains on a budget
    assert "(default: 30000)" in found["train-gan"]         # the guide's 30,000 steps
    assert "**Required.**" in found["impute"]               # --out


def test_hook_replaces_the_marker(hook):
    page_text = (ROOT / "docs" / hook.PAGE).read_text(encoding="utf-8")
    assert hook.MARKER in page_text

    class File:
        src_uri = hook.PAGE

    class Page:
        file = File()

    out = hook.on_page_markdown(page_text, page=Page(), config={}, files=[])
    assert hook.MARKER not in out and "## gankit train {#train}" in out


# --- the site ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_site_builds_strict(tmp_path):
    """`mkdocs build --strict`: a broken link, a page missing from the nav or a docstring
    mkdocstrings cannot read fails it."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    # Not --quiet: it silences the warnings that --strict counts, and the build passes.
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").is_file()
