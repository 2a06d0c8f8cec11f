"""The docs stay true: every public error class is documented in docs/errors.md,
every example there raises (or warns) what it says with the message it shows, and
every module path docs/design.md names exists.

Examples in docs/errors.md are fenced blocks

    ```python raises=tj.ShapeError          (or warns=UserWarning)
    <snippet>
    ```
    ```text
    <the message, as str() of the exception or warning>
    ```

run in one fresh Python process (with `np` and `tj` imported, the snippet compiled
as `example.py`, a temporary kernel cache). The raised class must be exactly the
documented one; the message must contain the documented text, where `[...]` stands
for a part that changes from run to run (a temporary path, a hash).
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import tapejit as tj

ROOT = pathlib.Path(__file__).resolve().parents[1]
ERRORS = ROOT / "docs" / "errors.md"
DESIGN = ROOT / "docs" / "design.md"

EXAMPLE = re.compile(r"```python (raises|warns)=(\S+)\n(.*?)```\s*```text\n(.*?)```", re.S)
WILDCARD = "[...]"

# Runs in a fresh process: reads [snippet, ...] as JSON on stdin, writes one result each.
HARNESS = r"""
import json, os, sys, warnings
import numpy as np
import tapejit as tj

def qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"

results = []
for source in json.load(sys.stdin):
    environ = dict(os.environ)
    result = {"raised": None, "message": None, "warnings": []}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(compile(source, "example.py", "exec"), {"np": np, "tj": tj, "__name__": "example"})
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["raised"] = qualname(type(exc))
            result["message"] = str(exc)
    result["warnings"] = [[qualname(w.category), str(w.message)] for w in caught]
    os.environ.clear()
    os.environ.update(environ)
    results.append(result)
json.dump(results, sys.stdout)
"""


def examples(text=None):
    """[(kind, class expression, snippet, expected text)] of docs/errors.md."""
    text = ERRORS.read_text() if text is None else text
    return [(kind, cls, code, expected.rstrip("\n")) for kind, cls, code, expected in EXAMPLE.findall(text)]


def run_snippets(snippets, cache_dir):
    env = dict(os.environ, TAPEJIT_CACHE_DIR=str(cache_dir), PYTHONWARNINGS="")
    done = subprocess.run([sys.executable, "-c", HARNESS], input=json.dumps(snippets), capture_output=True,
                          text=True, env=env, cwd=str(ROOT), timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def resolve(expression):
    """The class a `raises=`/`warns=` names: tj.X, a builtin, or a dotted import path."""
    if expression.startswith("tj."):
        return getattr(tj, expression[3:])
    if "." not in expression:
        import builtins
        return getattr(builtins, expression)
    module, _, name = expression.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def matches(expected, message):
    """`expected` (with [...] wildcards) occurs in `message`."""
    pattern = ".*?".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.search(pattern, message, re.S) is not None


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_snippets([code for _, _, code, _ in examples()], tmp_path_factory.mktemp("kernels"))


# ------------------------------------------------------------------ errors.md
def public_error_classes():
    return sorted(name for name in tj.__all__
                  if isinstance(getattr(tj, name), type) and issubclass(getattr(tj, name), BaseException))


def test_the_public_error_classes_are_the_known_ones():
    # A new exported error class must be documented: this list grows with errors.md.
    assert public_error_classes() == ["CompileError", "DTypeConversionError", "DTypeError", "IRError",
                                      "KernelCacheWarning", "ShapeError", "TapejitError"]


@pytest.mark.parametrize("name", public_error_classes())
def test_every_exported_error_class_is_documented(name):
    text = ERRORS.read_text()
    assert f"`tj.{name}`" in text
    documented = {cls for _, cls, _, _ in examples()}
    assert f"tj.{name}" in documented or name == "TapejitError", f"no example raises tj.{name}"


def test_errors_md_has_examples_for_each_kind_it_promises():
    kinds = {cls for _, cls, _, _ in examples()}
    for cls in ("TypeError", "ValueError", "IndexError", "RuntimeError", "UserWarning"):
        assert cls in kinds
    assert len(examples()) >= 20


def test_example_parser():
    text = ("```python raises=ValueError\nint('x')\n```\n\n```text\ninvalid literal [...] 'x'\n```\n"
            "```python\nnot an example\n```\n")
    assert examples(text) == [("raises", "ValueError", "int('x')\n", "invalid literal [...] 'x'")]
    assert matches("invalid literal [...] 'x'", "invalid literal for int() with base 10: 'x'")
    assert not matches("literal [...] invalid", "invalid literal for int() with base 10: 'x'")


@pytest.mark.parametrize("index", range(len(examples())))
def test_each_example_raises_what_it_documents(results, index):
    kind, cls_expr, code, expected = examples()[index]
    result = results[index]
    cls = resolve(cls_expr)
    where = f"errors.md example {index}:\n{code}"
    if kind == "raises":
        assert result["raised"] == qualname(cls), f"{where}\nraised {result['raised']}: {result['message']}"
        assert matches(expected, result["message"]), f"{where}\nactual message:\n{result['message']}"
    else:
        assert result["raised"] is None, f"{where}\nraised {result['raised']}: {result['message']}"
        hits = [message for category, message in result["warnings"] if category == qualname(cls)]
        assert any(matches(expected, m) for m in hits), f"{where}\nwarnings: {result['warnings']}"


def test_wildcards_are_rare():
    # [...] only hides what changes between runs, never the substance of a message.
    for _, _, _, expected in examples():
        assert expected.count(WILDCARD) <= 2
        assert len(expected.replace(WILDCARD, "")) >= 30


# ------------------------------------------------------------------ design.md
def named_paths(text):
    """Repository paths in backticks: `runtime/compiled.py`, `compiler/lower/`."""
    return sorted(set(re.findall(r"`((?:tracer|compiler|runtime|tapejit|tests|docs|examples|benchmarks)"
                                 r"/[\w./]*)`", text)))


def test_design_names_modules():
    paths = named_paths(DESIGN.read_text())
    assert len(paths) >= 15
    for stage in ("runtime/compiled.py", "compiler/trace.py", "compiler/ir.py", "compiler/grad.py",
                  "compiler/pipeline.py", "compiler/lower/fusion.py", "compiler/lower/codegen.py",
                  "runtime/kernel_cache.py", "runtime/dispatch.py", "compiler/executor.py"):
        assert stage in paths


@pytest.mark.parametrize("path", named_paths(DESIGN.read_text()))
def test_every_module_path_named_in_design_exists(path):
    assert (ROOT / path.rstrip("/")).exists(), path


def test_design_links_resolve():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", DESIGN.read_text() + ERRORS.read_text()):
        assert (DESIGN.parent / target).exists(), target
