"""The simulated SS 12000 server's answers, fetched over HTTP, validated against the official
OpenAPI file (``tests/reference/ss12000/openapi_ss12000_version2_1_0.yaml``) with jsonschema.

OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4: ``nullable`` becomes a ``null`` type,
``$ref`` siblings are ignored, ``example``/``readOnly``/``discriminator`` are annotations. The
translation below also makes every object closed (no properties the spec does not name), so a
misspelt key fails, and tolerates the two known quirks of the official file (see below).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import Any

import jsonschema
import pytest
import requests
import yaml

from samverkan.config import PROJECT_ROOT
from samverkan.simulator.ss12000_server import SS12000Data, serve

OPENAPI = PROJECT_ROOT / "tests/reference/ss12000/openapi_ss12000_version2_1_0.yaml"
OPENAPI_SHA256 = "aee9a95a4c5bd25cebaf357d266592f94e9388ae785ee9ac3b58e1992acccd28"
TOKEN = "openapi-test-token-51c2"  # noqa: S105 - a test credential
WINDOW = {"startTime.onOrAfter": "2000-01-01T00:00:00Z", "startTime.onOrBefore": "2100-01-01T00:00:00Z"}
ANNOTATIONS = {"example", "examples", "description", "readOnly", "writeOnly", "discriminator", "xml",
               "externalDocs", "deprecated", "nullable"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


# --- OpenAPI 3.0 -> JSON Schema draft 4 --------------------------------------------------------

def _spec() -> dict[str, Any]:
    assert OPENAPI.is_file(), f"the official SS 12000 OpenAPI file is missing: {OPENAPI}"
    raw = OPENAPI.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == OPENAPI_SHA256, "not the official OpenAPI file v2.1.0"
    return yaml.safe_load(raw)


def _convert(node: Any) -> Any:
    """One OpenAPI schema object as JSON Schema draft 4."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": node["$ref"]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ANNOTATIONS:
            continue
        if key == "properties":
            out[key] = {name: _convert(v) for name, v in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _convert(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(v) for v in value]
        else:
            out[key] = value
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [{"type": "null"}, out]}
    return out


def _property_names(schemas: dict[str, Any], node: dict[str, Any],
                    seen: frozenset[str] = frozenset()) -> set[str]:
    """The property names a (possibly composed) schema declares."""
    ref = node.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return set() if name in seen else _property_names(schemas, schemas[name], seen | {name})
    names = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        names |= _property_names(schemas, part, seen)
    return names


def _close(schemas: dict[str, Any], node: Any, parts: frozenset[int]) -> None:
    """additionalProperties: false on every object schema that declares its properties (at the
    level of an allOf composition, not on its parts, which draft 4 would check one by one)."""
    if isinstance(node, list):
        for item in node:
            _close(schemas, item, parts)
        return
    if not isinstance(node, dict) or "$ref" in node:
        return
    if "allOf" in node:
        names = _property_names(schemas, node)
        if names:
            node.setdefault("properties", {})
            for name in names:
                node["properties"].setdefault(name, {})
            node["additionalProperties"] = False
    elif "properties" in node and "additionalProperties" not in node and id(node) not in parts:
        node["additionalProperties"] = False
    for key in ("properties",):
        for value in node.get(key, {}).values():
            _close(schemas, value, parts)
    for key in ("items", "not", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _close(schemas, node[key], parts)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            _close(schemas, node[key], parts)


def _allof_parts(schemas: dict[str, Any]) -> frozenset[int]:
    """ids of the schema objects used as parts of an allOf (they stay open)."""
    parts: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for part in node.get("allOf", []):
                ref = part.get("$ref") if isinstance(part, dict) else None
                parts.add(id(schemas[ref.rsplit("/", 1)[-1]]) if ref else id(part))
            for value in node.values():
                walk(value)

    walk(schemas)
    return frozenset(parts)


def json_schemas(spec: dict[str, Any]) -> dict[str, Any]:
    """components.schemas of the spec as draft-4 schemas, closed, with the quirks tolerated."""
    schemas = {name: _convert(schema) for name, schema in spec["components"]["schemas"].items()}
    # Quirk 1: AttendanceSchedule requires 'scheduleDays', a property it does not have; the
    # property is 'scheduleEntries'.
    schedule = schemas["AttendanceSchedule"]
    if "scheduleDays" not in schedule["properties"] and "scheduleEntries" in schedule["properties"]:
        schedule["required"] = [("scheduleEntries" if r == "scheduleDays" else r)
                                for r in schedule["required"]]
    # Quirk 2: the deletions payload spells the activities key 'activitites'; a server that
    # spells it right is accepted too.
    deleted = schemas["DeletedEntities_data"]["properties"]
    if "activitites" in deleted:
        deleted.setdefault("activities", deleted["activitites"])
    _close(schemas, list(schemas.values()), _allof_parts(schemas))
    return schemas


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        dt.datetime.fromisoformat(value.replace("z", "Z"))
        return True

    @checker.checks("date", raises=ValueError)
    def date(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and bool(dt.date.fromisoformat(value))

    @checker.checks("uuid", raises=ValueError)
    def is_uuid(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return len(value) == 36 and str(uuid.UUID(value)) == value.lower()

    return checker


class Contract:
    """Validators of the response schemas of the spec's GET operations."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.schemas = json_schemas(spec)
        self.checker = _format_checker()

    def response_schema(self, path: str, status: int) -> str:
        responses = self.spec["paths"][path]["get"]["responses"]
        response = responses.get(str(status)) or responses["default"]
        ref = response["content"]["application/json"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[-1]

    def validator(self, name: str) -> jsonschema.Draft4Validator:
        root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": self.schemas}}
        return jsonschema.Draft4Validator(root, format_checker=self.checker)

    def errors(self, path: str, response: requests.Response) -> list[str]:
        name = self.response_schema(path, response.status_code)
        found = sorted(self.validator(name).iter_errors(response.json()), key=lambda e: list(e.path))
        return [f"{name} at {'/'.join(map(str, e.path))}: {e.message}" for e in found[:10]]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(_spec())


@pytest.fixture(scope="module")
def served():
    from samverkan.simulator.population import generate

    data = SS12000Data.from_population(generate(pupils=40))
    with serve(data, TOKEN) as server:
        yield data, server


def _get(server, path: str, **params: Any) -> requests.Response:
    return requests.get(server.base_url + path, params=params,
                        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def _pages(server, path: str, limit: int, max_pages: int, **params: Any) -> list[requests.Response]:
    responses = [_get(server, path, limit=limit, **params)]
    while responses[-1].status_code == 200 and responses[-1].json().get("pageToken") and \
            len(responses) < max_pages:
        responses.append(_get(server, path, limit=limit, pageToken=responses[-1].json()["pageToken"]))
    return responses


# --- the translation itself --------------------------------------------------------------------

def test_the_translation_follows_openapi_3_0(contract):
    schemas = contract.schemas
    assert contract.response_schema("/persons", 200) == "PersonsExpanded"
    assert contract.response_schema("/persons", 400) == "Error"
    assert schemas["Organisations"]["properties"]["pageToken"]["type"] == ["string", "null"]
    assert schemas["AttendanceSchedule"]["required"].count("scheduleEntries") == 1
    assert "scheduleDays" not in schemas["AttendanceSchedule"]["required"]
    # a record is closed: a key the spec does not name fails, as do a wrong type and format
    org = {"id": "0a000000-0000-4000-8000-000000000001", "displayName": "Skola",
           "organisationType": "Skolenhet",
           "meta": {"created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00+01:00"}}
    check = contract.validator("Organisation")
    assert list(check.iter_errors(org)) == []
    assert any("displayNamn" in e.message for e in check.iter_errors({**org, "displayNamn": "x"}))
    assert list(check.iter_errors({**org, "id": "not-a-uuid"}))
    assert list(check.iter_errors({**org, "meta": {"created": "2026-01-01 00:00", "modified": "x"}}))
    assert list(check.iter_errors({**org, "schoolTypes": ["GR", "XX"]}))
    # an allOf composition (PersonExpanded = Person + expansions) is closed at its own level
    person = {"id": "0c000000-0000-4000-8000-000000000001", "givenName": "Åsa", "familyName": "Ek",
              "meta": org["meta"]}
    assert list(contract.validator("PersonExpanded").iter_errors(person)) == []
    assert list(contract.validator("PersonExpanded").iter_errors({**person, "nickName": "x"}))
    page = {"data": [org], "pageToken": None}
    assert list(contract.validator("Organisations").iter_errors(page)) == []
    # both spellings of the activities deletions key are accepted, an unknown key is not
    ids = ["0e000000-0000-4000-8000-000000000001"]
    deleted = contract.validator("DeletedEntities")
    assert list(deleted.iter_errors({"data": {"activitites": ids}, "pageToken": None})) == []
    assert list(deleted.iter_errors({"data": {"activities": ids}})) == []
    assert list(deleted.iter_errors({"data": {"lessons": ids}}))


# --- real answers of the simulator ---------------------------------------------------------------

def test_record_endpoints_answer_by_the_contract(contract, served):
    data, server = served
    checked: dict[str, int] = {}
    for path, params, limit, max_pages in [
        ("/organisations", {}, 7, 100),
        ("/persons", {}, 20, 100),
        ("/calendarEvents", WINDOW, 1000, 2),
        ("/attendances", {}, 1000, 2),
    ]:
        for response in _pages(server, path, limit, max_pages, **params):
            assert response.status_code == 200, response.text
            assert contract.errors(path, response) == [], path
            checked[path] = checked.get(path, 0) + len(response.json()["data"])
    assert checked["/organisations"] == data.count("organisations")
    assert checked["/persons"] == data.count("persons")
    assert checked["/calendarEvents"] == 2000 and checked["/attendances"] == 2000
    # the last page of attendances too (its pageToken is null)
    ids = data.ids("attendances")
    after = data.get("attendances", ids[-10])["meta"]["modified"]
    tail = _get(server, "/attendances", **{"meta.modified.after": after}, limit=1000)
    assert tail.status_code == 200 and tail.json()["pageToken"] is None
    assert 1 <= len(tail.json()["data"]) <= 9
    assert contract.errors("/attendances", tail) == []

    # the validation bites on served answers: nested keys, types and formats are checked
    person = _get(server, "/persons", limit=1).json()["data"][0]
    assert person["enrolments"] and person["civicNo"]["value"]
    check = contract.validator("PersonsExpanded")
    bad_enrolment = {**person, "enrolments": [{**person["enrolments"][0], "schoolYear": "7"}]}
    extra_key = {**person, "civicNo": {**person["civicNo"], "countryCode": "SE"}}
    bad_date = {**person, "birthDate": "2013-02-30"}
    bad_sex = {**person, "sex": "M"}
    for record in (bad_enrolment, extra_key, bad_date, bad_sex):
        assert list(check.iter_errors({"data": [record], "pageToken": None}))

def test_deleted_entities_and_errors_answer_by_the_contract(contract, served):
    data, server = served
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    data.delete("attendances", data.ids("attendances")[0])
    data.delete("calendarEvents", data.ids("calendarEvents")[0])
    response = _get(server, "/deletedEntities", after=before.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 200
    assert contract.errors("/deletedEntities", response) == []
    body = response.json()["data"]
    assert sum(len(ids) for ids in body.values()) == 2 and set(body) == {"attendances", "calendarEvents"}

    # Error bodies: pageToken combined with a filter (400), a bad parameter (400), no token
    first = _get(server, "/organisations", limit=1)
    token = first.json()["pageToken"]
    combined = _get(server, "/organisations", pageToken=token,
                    **{"meta.modified.after": "2020-01-01T00:00:00Z"})
    assert combined.status_code == 400
    assert contract.errors("/organisations", combined) == []
    assert combined.json()["code"] == "invalid_filter"
    bad = _get(server, "/attendances", limit="many")
    assert bad.status_code == 400 and contract.errors("/attendances", bad) == []
    anonymous = requests.get(server.base_url + "/persons", timeout=10)
    assert anonymous.status_code == 401 and contract.errors("/persons", anonymous) == []
