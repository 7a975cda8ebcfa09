#!/usr/bin/env python3
"""Compares the v2 .proto files in proto/ with the v2 contract (contract-v2.json).

It compiles every .proto under the v2 directories (plus zitadel/message.proto, which holds
zitadel.v1.ErrorDetail) with protoc into a descriptor set (--include_imports
--include_source_info), then checks, for every definition the contract lists as in scope:

  * files: package, go_package, imports (the contract's importsNeededForScope minus the
    annotation protos our protoc does not have), exactly the in-scope top-level definitions;
  * messages: full name, nesting, file/package, every field's number, name, json name, type /
    type name, label, real-oneof membership, proto3 optional (and its synthetic oneof),
    deprecated flag, the real oneofs, no reserved ranges, no extra fields or nested types;
    the validate rules and field behaviours as comments above the field / oneof;
  * enums: file/package, value names and numbers, nothing extra;
  * services and methods: file/package, exactly the in-scope methods, input and output types,
    no streaming, idempotency level, the auth option (extension 50001) and the REST rule and
    documented permission as the comment above the RPC;
  * zitadel/protoc_gen_zitadel/v2/options.proto against the contract's "definition" text and
    its extension (number, extendee, type).

Usage: check.py [--contract PATH] [--protoc PATH] [--descriptor-set-out PATH]
Needs the Python protobuf package (e.g. a venv with `pip install protobuf`).
Exit status 0 when there are no differences, 1 otherwise.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PROTO_ROOT = os.path.join(REPO, "proto")
V2_DIRS = [
    "zitadel/user/v2",
    "zitadel/application/v2",
    "zitadel/filter/v2",
    "zitadel/object/v2",
    "zitadel/protoc_gen_zitadel/v2",
]
EXTRA_INPUTS = ["zitadel/message.proto"]
# Imports ZITADEL uses only for annotations; they are not available to our protoc, so the
# annotations they carry are written as comments instead.
UNAVAILABLE_IMPORTS = {
    "validate/validate.proto",
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/field_behavior.proto",
    "protoc-gen-openapiv2/options/annotations.proto",
}
# Files that predate the v2 work and are shared with v1 (outside the v2 directories).
PREEXISTING_FILES = {"zitadel/message.proto"}

FD = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": FD.TYPE_DOUBLE, "float": FD.TYPE_FLOAT, "int64": FD.TYPE_INT64,
    "uint64": FD.TYPE_UINT64, "int32": FD.TYPE_INT32, "fixed64": FD.TYPE_FIXED64,
    "fixed32": FD.TYPE_FIXED32, "bool": FD.TYPE_BOOL, "string": FD.TYPE_STRING,
    "bytes": FD.TYPE_BYTES, "uint32": FD.TYPE_UINT32, "sfixed32": FD.TYPE_SFIXED32,
    "sfixed64": FD.TYPE_SFIXED64, "sint32": FD.TYPE_SINT32, "sint64": FD.TYPE_SINT64,
}
TYPE_NAMES = {v: k for k, v in SCALARS.items()}
TYPE_NAMES[FD.TYPE_MESSAGE] = "message"
TYPE_NAMES[FD.TYPE_ENUM] = "enum"
TYPE_NAMES[FD.TYPE_GROUP] = "group"

diffs = []
notes = []


def diff(where, what):
    diffs.append(f"{where}: {what}")


def find_protoc(explicit):
    if explicit:
        return explicit
    if os.environ.get("PROTOC"):
        return os.environ["PROTOC"]
    cargo_home = os.environ.get("CARGO_HOME", os.path.join(os.path.expanduser("~"), ".cargo"))
    hits = sorted(glob.glob(os.path.join(
        cargo_home, "registry", "src", "*", "protoc-bin-vendored-linux-x86_64-*", "bin", "protoc")))
    if not hits:
        sys.exit("protoc not found: pass --protoc or set PROTOC")
    return hits[-1]


def compile_set(protoc, out):
    inputs = []
    for d in V2_DIRS:
        inputs += sorted(
            os.path.relpath(p, PROTO_ROOT)
            for p in glob.glob(os.path.join(PROTO_ROOT, d, "**", "*.proto"), recursive=True))
    inputs += EXTRA_INPUTS
    cmd = [protoc, "-I", PROTO_ROOT, "--include_imports", "--include_source_info",
           f"--descriptor_set_out={out}"] + inputs
    res = subprocess.run(cmd, cwd=PROTO_ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("protoc failed:\n" + res.stderr)
    if res.stderr.strip():
        # Warnings (e.g. unused imports) count as differences: imports must be exact.
        for line in res.stderr.strip().splitlines():
            diff("protoc", line)
    with open(out, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    return fds, inputs


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def render_rule(rule):
    """{"string": {"minLen": "1"}} -> 'string.min_len = 1' (PGV field rules, text form)."""
    parts = []
    for kind, body in rule.items():
        for key, value in body.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            parts.append(f"{kind}.{snake(key)} = {value}")
    return ", ".join(parts)


class Index:
    """Where each definition lives in the descriptor set, with its leading comments."""

    def __init__(self, fds):
        self.files = {f.name: f for f in fds.file}
        self.messages = {}   # full name -> (file, DescriptorProto, parent full name or None, path)
        self.enums = {}      # full name -> (file, EnumDescriptorProto, parent, path)
        self.services = {}   # full name -> (file, ServiceDescriptorProto, path)
        self.comments = {}   # (file name, path tuple) -> leading comments
        for f in fds.file:
            for loc in f.source_code_info.location:
                if loc.leading_comments:
                    self.comments[(f.name, tuple(loc.path))] = loc.leading_comments
            prefix = f".{f.package}" if f.package else ""
            for i, m in enumerate(f.message_type):
                self._msg(f, m, prefix, None, (4, i))
            for i, e in enumerate(f.enum_type):
                self.enums[f"{prefix}.{e.name}"[1:]] = (f, e, None, (5, i))
            for i, s in enumerate(f.service):
                self.services[f"{prefix}.{s.name}"[1:]] = (f, s, (6, i))

    def _msg(self, f, m, prefix, parent, path):
        full = f"{prefix}.{m.name}"
        self.messages[full[1:]] = (f, m, parent, path)
        for i, n in enumerate(m.nested_type):
            self._msg(f, n, full, full[1:], path + (3, i))
        for i, e in enumerate(m.enum_type):
            self.enums[f"{full}.{e.name}"[1:]] = (f, e, full[1:], path + (4, i))

    def comment(self, fname, path):
        return self.comments.get((fname, tuple(path)), "")


def expect_comment(where, text, needle):
    if needle not in text:
        diff(where, f"comment above it should contain {needle!r}; it reads {text.strip()!r}")


def check_messages(contract, idx):
    for full, cm in contract["messages"].items():
        where = f"message {full}"
        if full not in idx.messages:
            diff(where, "missing")
            continue
        f, m, parent, path = idx.messages[full]
        if f.name != cm["file"]:
            diff(where, f"in file {f.name}, contract says {cm['file']}")
        if f.package != cm["package"]:
            diff(where, f"package {f.package}, contract says {cm['package']}")
        if parent != cm.get("nestedIn"):
            diff(where, f"nested in {parent}, contract says {cm.get('nestedIn')}")
        if m.reserved_range or m.reserved_name:
            diff(where, "has reserved ranges/names; the contract lists none")
        if m.extension_range:
            diff(where, "has extension ranges; the contract lists none")
        for n in m.nested_type:
            if f"{full}.{n.name}" not in contract["messages"]:
                diff(where, f"nested message {n.name} is not in the contract")
        for e in m.enum_type:
            if f"{full}.{e.name}" not in contract["enums"]:
                diff(where, f"nested enum {e.name} is not in the contract")

        by_name = {fl.name: (i, fl) for i, fl in enumerate(m.field)}
        want_names = [cf["name"] for cf in cm["fields"]]
        for extra in sorted(set(by_name) - set(want_names)):
            diff(where, f"field {extra} is not in the contract")
        for cf in cm["fields"]:
            fw = f"{where}.{cf['name']}"
            if cf["name"] not in by_name:
                diff(fw, "missing")
                continue
            i, fl = by_name[cf["name"]]
            if fl.number != cf["number"]:
                diff(fw, f"number {fl.number}, contract says {cf['number']}")
            if fl.json_name != cf["jsonName"]:
                diff(fw, f"json name {fl.json_name}, contract says {cf['jsonName']}")
            # type
            kind = cf["kind"]
            if kind == "scalar":
                if fl.type != SCALARS.get(cf["type"]):
                    diff(fw, f"type {TYPE_NAMES.get(fl.type)}, contract says {cf['type']}")
                if fl.type_name:
                    diff(fw, f"scalar with type name {fl.type_name}")
            else:
                want_type = FD.TYPE_MESSAGE if kind == "message" else FD.TYPE_ENUM
                if fl.type != want_type:
                    diff(fw, f"kind {TYPE_NAMES.get(fl.type)}, contract says {kind}")
                if fl.type_name != "." + cf["type"]:
                    diff(fw, f"type {fl.type_name[1:]}, contract says {cf['type']}")
            # label and presence
            label = cf["label"]
            if label == "repeated":
                if fl.label != FD.LABEL_REPEATED:
                    diff(fw, "not repeated, contract says repeated")
            elif fl.label != FD.LABEL_OPTIONAL:
                diff(fw, f"label {FD.Label.Name(fl.label)}, contract says {label}")
            want_p3 = bool(cf.get("proto3Optional", False))
            if fl.proto3_optional != want_p3:
                diff(fw, f"proto3_optional {fl.proto3_optional}, contract says {want_p3}")
            if (label == "optional") != fl.proto3_optional:
                diff(fw, f"label {label} disagrees with proto3_optional {fl.proto3_optional}")
            # oneof membership
            has_oneof = fl.HasField("oneof_index")
            oneof_name = m.oneof_decl[fl.oneof_index].name if has_oneof else None
            if want_p3:
                if oneof_name != cf.get("syntheticOneof"):
                    diff(fw, f"synthetic oneof {oneof_name}, contract says {cf.get('syntheticOneof')}")
            elif cf.get("oneof"):
                if oneof_name != cf["oneof"]:
                    diff(fw, f"in oneof {oneof_name}, contract says {cf['oneof']}")
            elif has_oneof:
                diff(fw, f"in oneof {oneof_name}, contract says none")
            # deprecated
            want_dep = "deprecatedIn" in cf
            if fl.options.deprecated != want_dep:
                diff(fw, f"deprecated {fl.options.deprecated}, contract says {want_dep}")
            if fl.HasField("default_value") or fl.HasField("extendee"):
                diff(fw, "unexpected default value or extendee")
            # annotations written as comments
            text = idx.comment(f.name, path + (2, i))
            if "validate" in cf:
                expect_comment(fw, text, "validate: " + render_rule(cf["validate"]))
            if "validateV4_13" in cf:
                expect_comment(fw, text, "v4.13: " + render_rule(cf["validateV4_13"]))
            if "validate" not in cf and "validate:" in text:
                diff(fw, f"comment names a validate rule the contract does not list: {text.strip()!r}")
            for fb in cf.get("fieldBehavior", []):
                expect_comment(fw, text, f"field_behavior: {fb}")
            if "fieldBehavior" not in cf and "field_behavior:" in text:
                diff(fw, "comment names a field behaviour the contract does not list")

        # real oneofs (synthetic ones are those holding only a proto3 optional field)
        synthetic = {fl.oneof_index for fl in m.field if fl.proto3_optional}
        real = []
        for oi, od in enumerate(m.oneof_decl):
            if oi in synthetic:
                continue
            members = [fl.name for fl in m.field if fl.HasField("oneof_index") and fl.oneof_index == oi]
            real.append((oi, od.name, members))
        want_oneofs = cm.get("oneofs", [])
        got = [(n, mem) for _, n, mem in real]
        want = [(o["name"], o["fields"]) for o in want_oneofs]
        if got != want:
            diff(where, f"oneofs {got}, contract says {want}")
        for oi, name, _ in real:
            req = next((o.get("required") for o in want_oneofs if o["name"] == name), None)
            text = idx.comment(f.name, path + (8, oi))
            if req:
                expect_comment(f"{where} oneof {name}", text, "validate: (validate.required) = true")
            elif "validate" in text:
                diff(f"{where} oneof {name}", "comment names a required rule the contract does not list")
        # the contract's field order is by number; keep declaration order by number too
        nums = [fl.number for fl in m.field]
        if nums != sorted(nums):
            notes.append(f"{where}: fields not declared in number order ({nums})")


def check_enums(contract, idx):
    for full, ce in contract["enums"].items():
        where = f"enum {full}"
        if full not in idx.enums:
            diff(where, "missing")
            continue
        f, e, parent, _ = idx.enums[full]
        if f.name != ce["file"]:
            diff(where, f"in file {f.name}, contract says {ce['file']}")
        if f.package != ce["package"]:
            diff(where, f"package {f.package}, contract says {ce['package']}")
        got = [(v.name, v.number) for v in e.value]
        want = [(v["name"], v["number"]) for v in ce["values"]]
        if got != want:
            diff(where, f"values {got}, contract says {want}")
        if e.reserved_range or e.reserved_name:
            diff(where, "has reserved ranges/names; the contract lists none")
        if e.options.allow_alias:
            diff(where, "allow_alias set")


def build_pool(fds):
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool


def check_services(contract, idx, pool):
    method_options_cls = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("google.protobuf.MethodOptions"))
    try:
        ext = pool.FindExtensionByName("zitadel.protoc_gen_zitadel.v2.options")
    except KeyError:
        ext = None
        diff("extension zitadel.protoc_gen_zitadel.v2.options", "missing")
    for full, cs in contract["services"].items():
        where = f"service {full}"
        if full not in idx.services:
            diff(where, "missing")
            continue
        f, s, spath = idx.services[full]
        if f.name != cs["file"]:
            diff(where, f"in file {f.name}, contract says {cs['file']}")
        if f.package != cs["package"]:
            diff(where, f"package {f.package}, contract says {cs['package']}")
        got = [m.name for m in s.method]
        if sorted(got) != sorted(cs["methodsInScope"]):
            diff(where, f"methods {got}, contract says {cs['methodsInScope']}")
        for mi, m in enumerate(s.method):
            cm = contract["methods"].get(m.name)
            mw = f"method {full}/{m.name}"
            if cm is None:
                continue
            if cm["service"] != full:
                diff(mw, f"contract puts it in {cm['service']}")
            if cm["grpcPath"] != f"/{full}/{m.name}":
                diff(mw, f"gRPC path /{full}/{m.name}, contract says {cm['grpcPath']}")
            if m.input_type != "." + cm["request"]:
                diff(mw, f"input {m.input_type[1:]}, contract says {cm['request']}")
            if m.output_type != "." + cm["response"]:
                diff(mw, f"output {m.output_type[1:]}, contract says {cm['response']}")
            if m.client_streaming or m.server_streaming:
                diff(mw, "streaming; the contract's methods are unary")
            level = descriptor_pb2.MethodOptions.IdempotencyLevel.Name(m.options.idempotency_level)
            if level != cm.get("idempotencyLevel", "IDEMPOTENCY_UNKNOWN"):
                diff(mw, f"idempotency level {level}, contract says {cm.get('idempotencyLevel')}")
            # auth option (extension 50001)
            if ext is not None:
                opts = method_options_cls.FromString(m.options.SerializeToString())
                if not opts.HasExtension(ext):
                    diff(mw, "no zitadel.protoc_gen_zitadel.v2.options")
                else:
                    got_opt = json_format.MessageToDict(
                        opts.Extensions[ext], preserving_proto_field_name=True)
                    want_opt = {"auth_option": cm["authOption"]}
                    if got_opt != want_opt:
                        diff(mw, f"options {got_opt}, contract says {want_opt}")
            # REST rule and documented permission as the comment above the RPC
            text = idx.comment(f.name, spath + (2, mi))
            http = cm.get("http")
            if http:
                verb = next(k for k in http if k != "body")
                rule = f"{verb.upper()} {http[verb]}"
                if "body" in http:
                    rule += f', body "{http["body"]}"'
                expect_comment(mw, text, rule)
            else:
                expect_comment(mw, text, "no REST rule")
                if re.search(r"\b(GET|POST|PUT|PATCH|DELETE) /", text):
                    diff(mw, "comment names a REST rule; the contract has none")
            perm = cm["permission"]["documented"].split()[0]
            expect_comment(mw, text, f"[{perm}]")


def parse_definition(text):
    """'message A { T f = 1; reserved 2; } ...' -> {A: {"fields": {f: (T, 1)}, "reserved": [2]}}"""
    out = {}
    for name, body in re.findall(r"message\s+(\w+)\s*\{([^}]*)\}", text):
        fields, reserved = {}, []
        for stmt in [s.strip() for s in body.split(";") if s.strip()]:
            r = re.fullmatch(r"reserved\s+(\d+)", stmt)
            if r:
                reserved.append(int(r.group(1)))
                continue
            fm = re.fullmatch(r"([\w.]+)\s+(\w+)\s*=\s*(\d+)", stmt)
            if not fm:
                raise ValueError(f"cannot read {stmt!r} in the contract definition")
            fields[fm.group(2)] = (fm.group(1), int(fm.group(3)))
        out[name] = {"fields": fields, "reserved": reserved}
    return out


def check_options_file(contract, idx):
    fname = "zitadel/protoc_gen_zitadel/v2/options.proto"
    cf = contract["files"].get(fname)
    if not cf:
        return
    f = idx.files.get(fname)
    if f is None:
        diff(f"file {fname}", "missing")
        return
    pkg = cf["package"]
    want = parse_definition(cf["definition"])
    for name, spec in want.items():
        full = f"{pkg}.{name}"
        where = f"message {full}"
        if full not in idx.messages:
            diff(where, "missing")
            continue
        mf, m, parent, _ = idx.messages[full]
        if mf.name != fname or parent is not None:
            diff(where, f"in {mf.name} nested in {parent}")
        got = {}
        for fl in m.field:
            if fl.type in (FD.TYPE_MESSAGE, FD.TYPE_ENUM):
                t = fl.type_name[1:]
                if t.startswith(pkg + "."):
                    t = t[len(pkg) + 1:]
            else:
                t = TYPE_NAMES[fl.type]
            got[fl.name] = (t, fl.number)
            if fl.label != FD.LABEL_OPTIONAL or fl.proto3_optional or fl.HasField("oneof_index"):
                diff(f"{where}.{fl.name}", "label/oneof differs from the definition (plain singular)")
            if fl.json_name != re.sub(r"_(\w)", lambda x: x.group(1).upper(), fl.name):
                diff(f"{where}.{fl.name}", f"json name {fl.json_name}")
        if got != spec["fields"]:
            diff(where, f"fields {got}, contract says {spec['fields']}")
        reserved = []
        for rr in m.reserved_range:
            reserved += list(range(rr.start, rr.end))
        if reserved != spec["reserved"]:
            diff(where, f"reserved {reserved}, contract says {spec['reserved']}")
    for ext_spec in cf["inScope"].get("extensions", []):
        em = re.fullmatch(r"([\w.]+)\s*=\s*(\d+)\s+on\s+([\w.]+)", ext_spec)
        ext_full, number, extendee = em.group(1), int(em.group(2)), em.group(3)
        ext_name = ext_full.rsplit(".", 1)[1]
        found = [e for e in f.extension if e.name == ext_name]
        where = f"extension {ext_full}"
        if not found:
            diff(where, "missing")
            continue
        e = found[0]
        if e.number != number:
            diff(where, f"number {e.number}, contract says {number}")
        if e.extendee != "." + extendee:
            diff(where, f"extends {e.extendee[1:]}, contract says {extendee}")
        if e.type != FD.TYPE_MESSAGE or e.type_name != f".{pkg}.Options":
            diff(where, f"type {e.type_name}, expected {pkg}.Options")
    if len(f.extension) != len(cf["inScope"].get("extensions", [])):
        diff(f"file {fname}", f"{len(f.extension)} extensions, contract lists "
             f"{len(cf['inScope'].get('extensions', []))}")


def check_files(contract, idx, inputs):
    contract_files = contract["files"]
    for fname in inputs:
        if fname not in contract_files:
            diff(f"file {fname}", "not in the contract's files table")
    for fname, cf in contract_files.items():
        where = f"file {fname}"
        f = idx.files.get(fname)
        if f is None:
            diff(where, "missing")
            continue
        if f.package != cf["package"]:
            diff(where, f"package {f.package}, contract says {cf['package']}")
        if f.syntax != "proto3":
            diff(where, f"syntax {f.syntax or 'proto2'}, expected proto3")
        if f.options.go_package != cf["goPackage"]:
            if fname in PREEXISTING_FILES:
                notes.append(f"{where}: pre-existing v1 file without go_package "
                             f"(contract: {cf['goPackage']}); not a wire difference")
            else:
                diff(where, f"go_package {f.options.go_package!r}, contract says {cf['goPackage']!r}")
        want_deps = sorted(set(cf["importsNeededForScope"]) - UNAVAILABLE_IMPORTS)
        got_deps = sorted(f.dependency)
        if fname in PREEXISTING_FILES:
            if not set(want_deps) <= set(got_deps):
                diff(where, f"imports {got_deps}, needs {want_deps}")
        elif got_deps != want_deps:
            diff(where, f"imports {got_deps}, contract (minus unavailable) says {want_deps}")
        for dep in f.dependency:
            if dep in UNAVAILABLE_IMPORTS:
                diff(where, f"imports {dep}, which our protoc does not have")
        if f.public_dependency or f.weak_dependency:
            diff(where, "public/weak imports")
        scope = cf["inScope"]
        prefix = cf["package"] + "."
        got = {
            "messages": sorted(prefix + m.name for m in f.message_type),
            "enums": sorted(prefix + e.name for e in f.enum_type),
            "services": sorted(prefix + s.name for s in f.service),
        }
        for kind in ("messages", "enums", "services"):
            # the contract's in-scope lists include nested messages; compare top-level ones
            want = sorted(n for n in scope.get(kind, [])
                          if kind != "messages" or contract["messages"].get(n, {}).get("nestedIn") is None)
            if kind == "messages" and fname == "zitadel/protoc_gen_zitadel/v2/options.proto":
                want = sorted(scope.get(kind, []))
            if got[kind] != want:
                missing = sorted(set(want) - set(got[kind]))
                extra = sorted(set(got[kind]) - set(want))
                if fname in PREEXISTING_FILES and not missing:
                    notes.append(f"{where}: pre-existing v1 file also holds {extra} (used by v1)")
                else:
                    diff(where, f"{kind}: missing {missing}, not in scope {extra}")
            for n in want:
                table = {"messages": contract["messages"], "enums": contract["enums"],
                         "services": contract["services"]}[kind]
                if n in table and table[n].get("file") != fname:
                    diff(where, f"contract's files table and its {kind} entry disagree on {n}")
        if fname != "zitadel/protoc_gen_zitadel/v2/options.proto" and f.extension:
            diff(where, "declares extensions; the contract lists none here")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contract", default=os.path.join(REPO, "tests", "api", "contract-v2.json"))
    ap.add_argument("--protoc")
    ap.add_argument("--descriptor-set-out", help="keep the compiled descriptor set here")
    args = ap.parse_args()

    with open(args.contract) as fh:
        contract = json.load(fh)
    protoc = find_protoc(args.protoc)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.descriptor_set_out or os.path.join(tmp, "v2.pb")
        fds, inputs = compile_set(protoc, out)
    idx = Index(fds)
    pool = build_pool(fds)

    check_files(contract, idx, inputs)
    check_messages(contract, idx)
    check_enums(contract, idx)
    check_services(contract, idx, pool)
    check_options_file(contract, idx)

    n_fields = sum(len(m["fields"]) for m in contract["messages"].values())
    n_methods = sum(len(s["methodsInScope"]) for s in contract["services"].values())
    print(f"protoc: {subprocess.run([protoc, '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"compiled {len(inputs)} files ({len(fds.file)} with imports)")
    print(f"checked {len(contract['files'])} files, {len(contract['messages'])} messages "
          f"({n_fields} fields), {len(contract['enums'])} enums, {len(contract['services'])} services "
          f"({n_methods} methods), options.proto definition and extension")
    for n in notes:
        print(f"note: {n}")
    for d in diffs:
        print(f"DIFF: {d}")
    print(f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
