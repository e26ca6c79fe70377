"""``severance.__all__`` lists exactly the public names, sorted (as httpx does)."""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import severance
from severance import errors

SUBMODULES = [
    "severance.audit",
    "severance.backends",
    "severance.backends.base",
    "severance.backends.sqlite",
    "severance.cli",
    "severance.errors",
    "severance.extract",
    "severance.floors",
    "severance.keys",
    "severance.model",
    "severance.search",
    "severance.seal",
    "severance.session",
    "severance.store",
]


def test_all_imports_are_exported() -> None:
    included_private_members = ["__version__"]
    public = [
        name
        for name, value in vars(severance).items()
        if (not name.startswith("_") or name in included_private_members)
        and not isinstance(value, types.ModuleType)
    ]
    assert severance.__all__ == sorted(public)


def test_every_exported_name_exists_and_comes_from_severance() -> None:
    for name in severance.__all__:
        value = getattr(severance, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert value.__module__.startswith("severance."), name


def test_every_error_is_exported_and_derives_from_severance_error() -> None:
    assert set(errors.__all__) <= set(severance.__all__)
    defined = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, Exception)
    }
    assert defined == set(errors.__all__)
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, severance.SeveranceError)
        assert isinstance(cls.code, str) and cls.code
    codes = [getattr(errors, name).code for name in errors.__all__]
    assert len(codes) == len(set(codes)), "error codes must be unique"


def test_no_error_shadows_a_builtin() -> None:
    import builtins

    assert not set(errors.__all__) & set(dir(builtins))


@pytest.mark.parametrize("module_name", SUBMODULES)
def test_submodule_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = module.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"
