"""ProductionManager and TransformationService over a real server and a real database,
through the Python client: create from a YAML spec, status moves, refusals that store
nothing, authentication and ownership, and the job wrapper's calls."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from metaprod.clients import Client
from metaprod.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

from tests.integration.conftest import Connect, RunningServer
from tests.integration.system import race

TEST_DB = os.environ.get("METAPROD_TEST_DB", "sqlite")
FILE_KEYS = {"Unused", "Assigned", "Processed", "Problematic"}
TASK_KEYS = {"Created", "Submitted", "Running", "Done", "Failed"}


def spec_yaml(name: str = "muon-study", description: str = "muons, from generation to reconstruction") -> str:
    """The example production spec of docs/spec.md (YAML), with a given name."""
    return f"""\
production: {name}          # unique name
description: {description}
fields: {{datatype: str, energy: float, seed: int}}
transformations:
  - name: gen
    tasks: 5
    command: ./generate.sh
    outputs:
      - glob: "*.sim"
        metadata: {{datatype: sim}}
    output_query: {{datatype: sim, energy: {{">=": 1, "<=": 10}}}}
  - name: reco
    parents: [gen]
    input_query: {{datatype: sim, energy: {{">": 5}}}}
    group_size: 2
    plugin: standard
    max_attempts: 3
    backend: local
    command: ./reco.sh
    outputs: [{{glob: "*.reco", metadata: {{datatype: reco}}}}]
    output_query: {{datatype: reco}}
"""


ANA_YAML = """\
name: ana
parents: [reco]
input_query: {datatype: reco}
command: ./ana.sh
outputs: [{glob: "*.root", metadata: {datatype: ana}}]
output_query: {datatype: ana}
"""


def production_names(client: Client) -> list[str]:
    return [p.name for p in client.productions.list()]


def statuses(client: Client, name: str) -> tuple[str, dict[str, str]]:
    production = client.productions.get(name)
    return production.status, {t.name: t.status for t in production.transformations}


# --- creation, reads, status moves ---------------------------------------------------------


def test_create_from_yaml_then_get_list_and_progress(admin: Client) -> None:
    created = admin.productions.create(spec_yaml())
    production = created.production
    assert production.name == "muon-study"
    assert production.status == "New"
    assert production.owner == "admin"
    assert production.description == "muons, from generation to reconstruction"
    assert production.created_at is not None
    by_name = {t.name: t for t in production.transformations}
    assert list(by_name) == ["gen", "reco"]
    gen, reco = by_name["gen"], by_name["reco"]
    assert (gen.parents, gen.tasks, gen.input_query, gen.command) == ((), 5, None, "./generate.sh")
    assert gen.output_query is not None and gen.output_query["datatype"] == "sim"
    assert reco.parents == ("gen",)
    assert reco.tasks == 0
    assert (reco.plugin, reco.group_size, reco.max_attempts, reco.backend) == ("standard", 2, 3, "local")
    assert reco.input_query is not None and set(reco.input_query) == {"datatype", "energy"}
    assert {t.status for t in production.transformations} == {"New"}
    # The spec's fields were declared in the catalog.
    assert {(f.name, f.type) for f in admin.catalog.list_fields()} >= {
        ("datatype", "str"),
        ("energy", "float"),
        ("seed", "int"),
    }

    got = admin.productions.get("muon-study")
    assert (got.name, got.status, got.owner) == ("muon-study", "New", "admin")
    assert [t.name for t in got.transformations] == ["gen", "reco"]
    assert {t.name: t.parents for t in got.transformations} == {"gen": (), "reco": ("gen",)}

    assert production_names(admin) == ["muon-study"]
    assert [p.name for p in admin.productions.list(status="New")] == ["muon-study"]
    assert admin.productions.list(status="Active") == []

    progress = admin.productions.progress("muon-study")
    assert (progress.name, progress.status, progress.percent) == ("muon-study", "New", 0.0)
    assert [t.name for t in progress.transformations] == ["gen", "reco"]
    for tp in progress.transformations:
        assert tp.status == "New"
        assert set(tp.files) == FILE_KEYS, tp
        assert set(tp.tasks) >= TASK_KEYS, tp
        assert set(tp.files.values()) == {0}
        assert set(tp.tasks.values()) == {0}
        assert tp.percent == 0.0


def test_start_stop_start_then_delete_is_cleaning(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    assert admin.productions.start("muon-study").status == "Active"
    assert statuses(admin, "muon-study") == ("Active", {"gen": "Active", "reco": "Active"})
    assert admin.productions.stop("muon-study").status == "Stopped"
    assert statuses(admin, "muon-study") == ("Stopped", {"gen": "Stopped", "reco": "Stopped"})
    assert admin.productions.start("muon-study").status == "Active"
    assert statuses(admin, "muon-study") == ("Active", {"gen": "Active", "reco": "Active"})

    deleted = admin.productions.delete("muon-study")
    assert deleted.status == "Cleaning"
    assert statuses(admin, "muon-study") == ("Cleaning", {"gen": "Cleaning", "reco": "Cleaning"})
    assert admin.productions.progress("muon-study").status == "Cleaning"

    # Cleaning -> Active is not a legal move: refused, nothing changed.
    with pytest.raises(FailedPrecondition, match="Cleaning"):
        admin.productions.start("muon-study")
    with pytest.raises(FailedPrecondition):
        admin.productions.stop("muon-study")
    assert statuses(admin, "muon-study") == ("Cleaning", {"gen": "Cleaning", "reco": "Cleaning"})


def test_add_transformation_with_parents(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    added = admin.productions.add_transformation("muon-study", ANA_YAML)
    ana = added.transformation
    assert (ana.name, ana.production, ana.status, ana.parents) == ("ana", "muon-study", "New", ("reco",))
    assert ana.input_query == {"datatype": "reco"}
    production = admin.productions.get("muon-study")
    assert {t.name: t.parents for t in production.transformations} == {
        "gen": (),
        "reco": ("gen",),
        "ana": ("reco",),
    }
    assert admin.transformations.get("muon-study", "ana").transformation.parents == ("reco",)

    # A transformation added to an Active production is Active at once.
    admin.productions.start("muon-study")
    more = admin.productions.add_transformation(
        "muon-study",
        {
            "name": "ana2",
            "parents": ["reco"],
            "input_query": {"datatype": "reco"},
            "command": "./ana2.sh",
        },
    )
    assert more.transformation.status == "Active"

    # Refused additions store nothing: an unknown parent, an empty link, a duplicate name.
    bad = [
        {"name": "x", "parents": ["nope"], "input_query": {"datatype": "reco"}, "command": "true"},
        {"name": "y", "parents": ["gen"], "input_query": {"datatype": "reco"}, "command": "true"},
        {"name": "ana", "parents": ["reco"], "input_query": {"datatype": "reco"}, "command": "true"},
    ]
    for entry in bad:
        with pytest.raises(InvalidArgument):
            admin.productions.add_transformation("muon-study", entry)
    names = [t.name for t in admin.productions.get("muon-study").transformations]
    assert names == ["gen", "reco", "ana", "ana2"]
    assert [t.name for t in admin.transformations.list(production="muon-study")] == names


def test_add_transformation_to_cleaning_production_is_failed_precondition(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    admin.productions.delete("muon-study")
    with pytest.raises(FailedPrecondition):
        admin.productions.add_transformation("muon-study", ANA_YAML)


def test_validate_stores_nothing(admin: Client) -> None:
    result = admin.productions.validate(spec_yaml())
    assert result.ok is True
    assert result.errors == ()
    # An invalid spec is reported, not raised.
    broken = spec_yaml().replace("input_query: {datatype: sim,", "input_query: {datatype: reco,")
    refused = admin.productions.validate(broken)
    assert refused.ok is False
    assert any(f.code == "empty_link" and set(f.transformations) == {"gen", "reco"} for f in refused.errors)
    # A spec that is not even YAML is malformed input.
    with pytest.raises(InvalidArgument):
        admin.productions.validate("production: [unclosed")
    assert admin.productions.list() == []
    assert admin.catalog.list_fields() == []
    with pytest.raises(NotFound):
        admin.productions.get("muon-study")


def variant(old: str, new: str) -> str:
    """That spec with one piece of text replaced (which must be there)."""
    text = spec_yaml()
    assert old in text, old
    return text.replace(old, new)


RECO_INPUT = 'input_query: {datatype: sim, energy: {">": 5}}'

ROOTLESS = """\
production: muon-study
fields: {datatype: str}
transformations:
  - name: lonely
    command: ./run.sh
    output_query: {datatype: sim}
"""

CYCLE = """\
production: muon-study
fields: {datatype: str}
transformations:
  - name: gen
    tasks: 2
    command: ./gen.sh
    output_query: {datatype: sim}
  - name: a
    parents: [gen, b]
    input_query: {datatype: sim}
    output_query: {datatype: sim}
    command: ./a.sh
  - name: b
    parents: [a]
    input_query: {datatype: sim}
    output_query: {datatype: sim}
    command: ./b.sh
"""

# (label, spec text, words the error message must contain)
BAD_SPECS: list[tuple[str, str, tuple[str, ...]]] = [
    ("malformed YAML", "production: [unclosed\n  - {", ("malformed",)),
    ("not a mapping", "- production: muon-study\n- transformations: []\n", ("mapping",)),
    ("scalar spec", "just a string", ("mapping",)),
    ("no command", variant("    command: ./reco.sh\n", ""), ("reco", "command")),
    ("unknown plugin", variant("plugin: standard", "plugin: nonesuch"), ("plugin", "nonesuch")),
    ("group_size 0", variant("group_size: 2", "group_size: 0"), ("group_size",)),
    (
        "unknown operator",
        variant("seed: int}", "seed: int, run: int}").replace(RECO_INPUT, 'input_query: {run: {"~": 1}}'),
        ("run", "~"),
    ),
    ("undeclared field", variant(RECO_INPUT, "input_query: {flavour: charm}"), ("flavour",)),
    ("empty declared link", variant(RECO_INPUT, "input_query: {datatype: reco}"), ("gen", "reco", "datatype", "sim")),
    ("cycle", CYCLE, ("cycle",)),
    ("root without tasks nor input", ROOTLESS, ("lonely", "tasks")),
]


def test_bad_specs_are_refused_and_store_nothing(admin: Client) -> None:
    for label, text, words in BAD_SPECS:
        with pytest.raises(InvalidArgument) as caught:
            admin.productions.create(text)
        message = str(caught.value)
        for word in words:
            assert word in message, f"{label}: {word!r} not in {message!r}"
        assert admin.productions.list() == [], label
        with pytest.raises(NotFound):
            admin.productions.get("muon-study")
        # Fields are declared only by a successful create.
        assert admin.catalog.list_fields() == [], label
    # And the good spec still goes through afterwards.
    assert admin.productions.create(spec_yaml()).production.status == "New"


def test_duplicate_production_name_already_exists(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    again = spec_yaml(description="another one").replace(
        "fields: {datatype: str, energy: float, seed: int}",
        "fields: {datatype: str, energy: float, seed: int, extra: int}",
    )
    with pytest.raises(AlreadyExists, match="muon-study"):
        admin.productions.create(again)
    assert production_names(admin) == ["muon-study"]
    production = admin.productions.get("muon-study")
    assert production.description == "muons, from generation to reconstruction"
    assert [t.name for t in production.transformations] == ["gen", "reco"]
    assert "extra" not in {f.name for f in admin.catalog.list_fields()}


def test_unknown_production_is_not_found(admin: Client) -> None:
    calls: list[Callable[[], object]] = [
        lambda: admin.productions.start("ghost"),
        lambda: admin.productions.stop("ghost"),
        lambda: admin.productions.delete("ghost"),
        lambda: admin.productions.get("ghost"),
        lambda: admin.productions.progress("ghost"),
        lambda: admin.productions.add_transformation("ghost", ANA_YAML),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="ghost"):
            call()
    assert admin.productions.list() == []


def test_concurrent_creates_of_one_name_make_one_production(server: RunningServer, admin: Client) -> None:
    for round_ in range(3):
        name = f"race-{round_}"
        outcomes = race(server, 6, lambda client, name=name: client.productions.create(spec_yaml(name)))
        assert outcomes.count("ok") == 1, outcomes
        assert all(o == "ok" or o.startswith("AlreadyExists") for o in outcomes), outcomes
    assert production_names(admin) == ["race-0", "race-1", "race-2"]


def test_parents_are_read_as_the_validator_reads_them(admin: Client) -> None:
    one = admin.productions.create(spec_yaml("one-string").replace("parents: [gen]", "parents: gen"))
    assert {t.name: t.parents for t in one.production.transformations}["reco"] == ("gen",)
    # A parent named twice is one link (accepted, stored once), as the validator reads it.
    twice = spec_yaml("twice").replace("parents: [gen]", "parents: [gen, gen]")
    assert admin.productions.validate(twice).ok
    created = admin.productions.create(twice)
    assert {t.name: t.parents for t in created.production.transformations}["reco"] == ("gen",)
    assert {t.name: t.parents for t in admin.productions.get("twice").transformations}["reco"] == ("gen",)
    assert production_names(admin) == ["one-string", "twice"]


def test_values_that_do_not_fit_are_invalid_argument(admin: Client) -> None:
    cases = [
        (spec_yaml("p" * 129), "production"),
        (variant("name: reco", "name: " + "r" * 129), "name"),
        (variant("tasks: 5", "tasks: 3000000000"), "tasks"),
        (variant("group_size: 2", "group_size: 3000000000"), "group_size"),
        (variant("max_attempts: 3", "max_attempts: 3000000000"), "max_attempts"),
    ]
    for text, word in cases:
        with pytest.raises(InvalidArgument, match=word):
            admin.productions.create(text)
        assert admin.productions.list() == [], word


def test_production_list_with_an_unknown_status_is_invalid_argument(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    with pytest.raises(InvalidArgument, match="Bogus"):
        admin.productions.list(status="Bogus")


# --- authentication and ownership ----------------------------------------------------------


def test_missing_or_wrong_token_is_unauthenticated(
    server: RunningServer, connect_as: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("METAPROD_TOKEN", raising=False)
    monkeypatch.delenv("METAPROD_TOKEN_FILE", raising=False)
    for token in ("", "not-a-real-token"):
        client = connect_as(token)
        with pytest.raises(Unauthenticated):
            client.productions.list()
        with pytest.raises(Unauthenticated):
            client.productions.create(spec_yaml())
        with pytest.raises(Unauthenticated):
            client.transformations.heartbeat(1, 1)
    assert connect_as(None).productions.list() == []


def test_reader_may_read_but_not_create(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    reader = connect_as(server.token("carol", "reader"))
    with pytest.raises(PermissionDenied):
        reader.productions.create(spec_yaml())
    assert admin.productions.list() == []
    assert admin.catalog.list_fields() == []
    admin.productions.create(spec_yaml())
    assert production_names(reader) == ["muon-study"]
    assert reader.productions.progress("muon-study").status == "New"
    with pytest.raises(PermissionDenied):
        reader.productions.start("muon-study")
    assert admin.productions.get("muon-study").status == "New"


def test_users_manage_only_what_they_own(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    alice = connect_as(server.token("alice", "user", owner="alice"))
    bob = connect_as(server.token("bob", "user", owner="bob"))
    created = alice.productions.create(spec_yaml())
    assert created.production.owner == "alice"
    assert alice.productions.start("muon-study").status == "Active"

    refusals: list[Callable[[], object]] = [
        lambda: bob.productions.stop("muon-study"),
        lambda: bob.productions.delete("muon-study"),
        lambda: bob.productions.add_transformation("muon-study", ANA_YAML),
        lambda: bob.transformations.stop("muon-study", "reco"),
        lambda: bob.transformations.reset("muon-study", "reco"),
    ]
    for call in refusals:
        with pytest.raises(PermissionDenied, match="alice"):
            call()
    assert statuses(admin, "muon-study") == ("Active", {"gen": "Active", "reco": "Active"})
    # bob still reads everything.
    assert production_names(bob) == ["muon-study"]

    # The owner and an admin manage it.
    assert alice.productions.add_transformation("muon-study", ANA_YAML).transformation.status == "Active"
    assert admin.productions.stop("muon-study").status == "Stopped"
    assert statuses(admin, "muon-study") == ("Stopped", {"gen": "Stopped", "reco": "Stopped", "ana": "Stopped"})


# --- TransformationService ------------------------------------------------------------------


def test_transformation_reads_known_and_unknown(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    detail = admin.transformations.get("muon-study", "reco")
    assert (detail.transformation.name, detail.transformation.production) == ("reco", "muon-study")
    assert detail.transformation.parents == ("gen",)
    assert sum(detail.files.values()) == 0
    assert sum(detail.tasks.values()) == 0

    assert [t.name for t in admin.transformations.list()] == ["gen", "reco"]
    assert [t.name for t in admin.transformations.list(production="muon-study")] == ["gen", "reco"]
    assert [t.name for t in admin.transformations.list(status="New")] == ["gen", "reco"]
    assert admin.transformations.list(status="Active") == []
    assert admin.transformations.files("muon-study", "reco") == []
    assert admin.transformations.files("muon-study", "reco", status="Problematic") == []
    assert admin.transformations.tasks("muon-study", "gen") == []
    assert admin.transformations.tasks("muon-study", "gen", status="Failed") == []

    not_found: list[Callable[[], object]] = [
        lambda: admin.transformations.get("muon-study", "nope"),
        lambda: admin.transformations.get("ghost", "reco"),
        lambda: admin.transformations.list(production="ghost"),
        lambda: admin.transformations.files("muon-study", "nope"),
        lambda: admin.transformations.files("ghost", "reco"),
        lambda: admin.transformations.tasks("muon-study", "nope"),
        lambda: admin.transformations.tasks("ghost", "gen"),
        lambda: admin.transformations.reset("muon-study", "nope"),
    ]
    for call in not_found:
        with pytest.raises(NotFound):
            call()

    bad_status: list[Callable[[], object]] = [
        lambda: admin.transformations.list(status="Bogus"),
        lambda: admin.transformations.files("muon-study", "reco", status="Bogus"),
        lambda: admin.transformations.tasks("muon-study", "reco", status="Bogus"),
    ]
    for call in bad_status:
        with pytest.raises(InvalidArgument, match="Bogus"):
            call()


def test_transformation_reset_and_set_status(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    assert admin.transformations.reset("muon-study", "reco") == 0
    with pytest.raises(NotFound):
        admin.transformations.set_status("muon-study", "nope", "Active")
    with pytest.raises(NotFound):
        admin.transformations.set_status("ghost", "reco", "Active")
    assert admin.transformations.start("muon-study", "reco").status == "Active"
    assert admin.transformations.stop("muon-study", "reco").status == "Stopped"
    # New -> Completed is not a legal move.
    with pytest.raises(FailedPrecondition):
        admin.transformations.set_status("muon-study", "gen", "Completed")
    assert admin.transformations.get("muon-study", "gen").transformation.status == "New"


def test_set_status_to_an_unknown_status_is_invalid_argument(admin: Client) -> None:
    admin.productions.create(spec_yaml())
    with pytest.raises(InvalidArgument):
        admin.transformations.set_status("muon-study", "reco", "Bogus")


def test_worker_calls(server: RunningServer, connect_as: Connect, admin: Client) -> None:
    # An admin may speak for any attempt; an unknown attempt is simply not live.
    assert admin.transformations.heartbeat(987654, 1) is False
    report = admin.transformations.report_result(987654, 1, success=True)
    assert report.accepted is False
    reader = connect_as(server.token("carol", "reader"))
    user = connect_as(server.token("alice", "user"))
    for client in (reader, user):
        with pytest.raises(PermissionDenied):
            client.transformations.heartbeat(987654, 1)
        with pytest.raises(PermissionDenied):
            client.transformations.report_result(987654, 1, success=False, error="boom", exit_code=1)


# --- the listing -----------------------------------------------------------------------------

LISTED_YAML = """\
production: {name}
description: every attribute a listing shows
fields: {{datatype: str, energy: float, site: str}}
transformations:
  - name: gen
    tasks: 5
    command: ./generate.sh
    outputs: [{{glob: "*.sim", metadata: {{datatype: sim}}}}]
    output_query: {{energy: {{"<=": 10, ">=": 1}}, datatype: sim}}
  - name: reco
    parents: [gen]
    input_query: {{energy: {{">": 5}}, datatype: sim}}
    group_size: 2
    max_attempts: 5
    max_runtime: 3600
    command: ./reco.sh
    outputs: [{{glob: "*.reco", metadata: {{datatype: reco}}}}]
    output_query: {{datatype: reco}}
  - name: merge
    parents: [reco]
    input_query: "datatype=reco"
    plugin: by_metadata
    group_by: [site, energy]
    command: cat $METAPROD_INPUTS > merged.root
    outputs: [{{glob: "*.root", metadata: {{datatype: merged}}}}]
    output_query: {{datatype: merged}}
  - name: pack
    parents: [merge]
    input_query: {{datatype: merged}}
    plugin: by_size
    max_bytes: 1000000000
    command: tar cf pack.tar $METAPROD_INPUTS
    outputs: [{{glob: "*.tar", metadata: {{datatype: pack}}}}]
"""


def test_listing_writes_the_messages_a_get_writes(server: RunningServer, admin: Client) -> None:
    """The listing's rows (stored JSON text, named tuples) make the very messages that
    production_to_pb makes of the ORM objects: JSON text with sorted keys, parents, every
    field."""
    from metaprod.db import listing, productions
    from metaprod.services.convert_production import listing_to_pb, production_to_pb

    for name in ("alpha", "beta", "gamma"):
        admin.productions.create(LISTED_YAML.format(name=name))
    admin.productions.delete("gamma")  # Cleaning: still listed
    for status, expected in (("", ["alpha", "beta", "gamma"]), ("Cleaning", ["gamma"])):
        with server.database.session_scope(readonly=True) as session:
            rows = listing.list_productions(session=session, status=status)
            by_production = listing.transformations_by_production(session=session, production_ids=[p.id for p in rows])
            parents = productions.parent_names(
                session=session, transformation_ids=[t.id for ts in by_production.values() for t in ts]
            )
            listed = listing_to_pb(rows, by_production, parents)
            wanted = []
            for row in rows:
                orm = productions.get_production(session=session, name=row.name)
                wanted.append(
                    production_to_pb(
                        orm,
                        productions.transformations_of(session=session, production=orm),
                        productions.parents_by_child(session=session, production=orm),
                    )
                )
        assert [p.name for p in listed.productions] == expected
        assert list(listed.productions) == wanted
        pack = listed.productions[-1].transformations[3]
        assert (list(pack.parents), pack.max_bytes) == (["merge"], 1_000_000_000)
        merge = listed.productions[-1].transformations[2]
        assert (list(merge.group_by), merge.plugin) == (["site", "energy"], "by_metadata")
        gen = listed.productions[-1].transformations[0]
        assert gen.output_query == '{"datatype": "sim", "energy": {"<=": 10.0, ">=": 1.0}}'
    assert [p.name for p in admin.productions.list()] == ["alpha", "beta", "gamma"]
