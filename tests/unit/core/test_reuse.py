"""Signatures of reuse by content (pure): what changes them, and what disables reuse."""

from __future__ import annotations

import pytest
from metaprod.core.reuse import recipe, relative_output, reuse_enabled, task_signature

BASE = recipe("cat $METAPROD_INPUTS > out", None, [{"glob": "*.out", "metadata": {}}], {"datatype": "out"})


def test_a_signature_follows_the_recipe_and_the_inputs_checksums_in_order() -> None:
    sig = task_signature(BASE, ["adler32:1", "adler32:2"])
    assert sig == task_signature(BASE, ["adler32:1", "adler32:2"]) and sig is not None and len(sig) == 64
    assert sig != task_signature(BASE, ["adler32:2", "adler32:1"])
    assert sig != task_signature(BASE, ["adler32:1", "adler32:3"])
    for other in (
        recipe("cat $METAPROD_INPUTS >> out", None, [{"glob": "*.out", "metadata": {}}], {"datatype": "out"}),
        recipe("cat $METAPROD_INPUTS > out", {"A": "1"}, [{"glob": "*.out", "metadata": {}}], {"datatype": "out"}),
        recipe("cat $METAPROD_INPUTS > out", None, [{"glob": "*.o", "metadata": {}}], {"datatype": "out"}),
        recipe("cat $METAPROD_INPUTS > out", None, [{"glob": "*.out", "metadata": {}}], None),
    ):
        assert task_signature(other, ["adler32:1", "adler32:2"]) != sig
    # No env and an empty env are the same recipe.
    assert recipe("x", None, [], None) == recipe("x", {}, [], None)


def test_an_input_without_checksum_disables_reuse_and_roots_sign_their_index() -> None:
    assert task_signature(BASE, ["adler32:1", ""]) is None
    assert task_signature(BASE, None, 0) != task_signature(BASE, None, 1)
    assert task_signature(BASE, None, 0) == task_signature(BASE, None, 0)


def test_reuse_defaults_and_relative_outputs() -> None:
    assert reuse_enabled({}, is_root=False) and not reuse_enabled({}, is_root=True)
    assert reuse_enabled({"reuse": True}, is_root=True) and not reuse_enabled({"reuse": False}, is_root=False)
    assert relative_output("/p/t/000003/sub/out.sim") == "sub/out.sim"
    with pytest.raises(ValueError):
        relative_output("not/an/lfn")


@pytest.mark.parametrize("key", ["reuse", "keep_checkpoints"])
def test_reuse_and_keep_checkpoints_take_booleans_only(key: str) -> None:
    from metaprod.core.spec import SpecError, parse_spec

    base = {"production": "p", "transformations": [{"name": "gen", "tasks": 1, "command": "true"}]}
    assert getattr(parse_spec(base).transformation("gen"), key) in (None, False)
    good = {**base, "transformations": [{**base["transformations"][0], key: True}]}  # type: ignore[index]
    assert getattr(parse_spec(good).transformation("gen"), key) is True
    bad = {**base, "transformations": [{**base["transformations"][0], key: "yes"}]}  # type: ignore[index]
    with pytest.raises(SpecError, match=f"{key} must be true or false"):
        parse_spec(bad)
