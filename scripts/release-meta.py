#!/usr/bin/env python3
"""Release metadata from Cargo.lock: a CycloneDX SBOM and the licence notices of a binary.

    scripts/release-meta.py sbom TARGET      > routeplane-ARCH-linux-musl.cdx.json
    scripts/release-meta.py notices TARGET   > THIRD-PARTY-LICENSES.txt

The crates are those compiled into the `routeplane` binary for TARGET (a Rust target
triple): `cargo metadata --locked --filter-platform TARGET`, walked from the package along
normal dependencies only (build-dependencies, proc macros and dev-dependencies are not
in the binary). Versions and checksums are the lock file's. Standard library only;
no network. `notices` exits 1 when a crate ships no licence file, naming it.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid

LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|notice|copyright|unlicense)([-._].*)?$", re.I)


def metadata(target):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def in_binary(meta):
    """The packages linked into the binary, by id, and each one's normal dependencies."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    by_id = {p["id"]: p for p in meta["packages"]}
    # A proc macro runs inside the compiler; its code is not linked into the binary.
    macro = {pid for pid, p in by_id.items()
             if any("proc-macro" in t["kind"] for t in p["targets"])}
    root = meta["resolve"]["root"]
    graph, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in graph:
            continue
        deps = sorted(
            d["pkg"]
            for d in nodes[pid]["deps"]
            if any(k["kind"] is None for k in d["dep_kinds"]) and d["pkg"] not in macro
        )
        graph[pid] = deps
        todo.extend(deps)
    packages = {pid: p for pid, p in by_id.items() if pid in graph}
    return root, packages, graph


def lock_checksums(workspace):
    """`(name, version) -> sha256` from Cargo.lock."""
    sums, name, version, in_package = {}, None, None, False
    with open(os.path.join(workspace, "Cargo.lock"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                in_package = line == "[[package]]"
                name = version = None
            elif not in_package or " = \"" not in line:
                continue
            elif line.startswith("name = "):
                name = line.split('"')[1]
            elif line.startswith("version = "):
                version = line.split('"')[1]
            elif line.startswith("checksum = "):
                sums[(name, version)] = line.split('"')[1]
    return sums


def spdx(expr):
    """Old-style `MIT/Apache-2.0` as an SPDX expression."""
    return " OR ".join(part.strip() for part in expr.split("/")) if expr else None


def purl(p):
    return f"pkg:cargo/{p['name']}@{p['version']}"


def release_time(workspace):
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        try:
            epoch = subprocess.run(
                ["git", "-C", workspace, "log", "-1", "--format=%ct"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            epoch = None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch) if epoch else time.time()))


def sbom(target):
    meta = metadata(target)
    workspace = meta["workspace_root"]
    root, packages, graph = in_binary(meta)
    sums = lock_checksums(workspace)
    components = []
    for pid in sorted(packages, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        if pid == root:
            continue
        p = packages[pid]
        c = {"type": "library", "bom-ref": purl(p), "name": p["name"], "version": p["version"],
             "purl": purl(p)}
        if p.get("description"):
            c["description"] = " ".join(p["description"].split())
        if p.get("license"):
            c["licenses"] = [{"expression": spdx(p["license"])}]
        elif p.get("license_file"):
            c["licenses"] = [{"license": {"name": "see " + os.path.basename(p["license_file"])}}]
        checksum = sums.get((p["name"], p["version"]))
        if checksum:
            c["hashes"] = [{"alg": "SHA-256", "content": checksum}]
        refs = []
        if p.get("source", "") and p["source"].startswith("registry+"):
            refs.append({"type": "distribution",
                         "url": f"https://crates.io/api/v1/crates/{p['name']}/{p['version']}/download"})
        else:
            # A path dependency: the vendored copy in this repository.
            path = os.path.relpath(os.path.dirname(p["manifest_path"]), workspace)
            c["properties"] = [{"name": "routeplane:vendored", "value": path}]
        if p.get("repository"):
            refs.append({"type": "vcs", "url": p["repository"]})
        if refs:
            c["externalReferences"] = refs
        components.append(c)
    me = packages[root]
    dependencies = [{"ref": purl(packages[pid]), "dependsOn": [purl(packages[d]) for d in deps]}
                    for pid, deps in sorted(graph.items(), key=lambda kv: purl(packages[kv[0]]))]
    body = {
        "components": components,
        "dependencies": dependencies,
    }
    # The same inputs give the same serial number: the SBOM is reproducible.
    digest = hashlib.sha256(json.dumps([target, body], sort_keys=True).encode()).digest()
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.UUID(bytes=digest[:16], version=5)}",
        "version": 1,
        "metadata": {
            "timestamp": release_time(workspace),
            "tools": {"components": [{"type": "application", "name": "scripts/release-meta.py"}]},
            "component": {
                "type": "application", "bom-ref": purl(me), "name": me["name"],
                "version": me["version"], "purl": purl(me),
                "licenses": [{"expression": spdx(me["license"])}],
                "properties": [{"name": "routeplane:target", "value": target}],
            },
        },
        **body,
    }
    json.dump(bom, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def notices(target):
    meta = metadata(target)
    root, packages, _ = in_binary(meta)
    missing = []
    out = [
        f"Licence notices of the crates compiled into routeplane for {target}.",
        "Each crate's licence files are reproduced as the crate ships them.",
        "",
    ]
    for pid in sorted(packages, key=lambda i: (packages[i]["name"], packages[i]["version"])):
        p = packages[pid]
        crate_dir = os.path.dirname(p["manifest_path"])
        files = sorted(f for f in os.listdir(crate_dir)
                       if LICENCE_FILE.match(f) and os.path.isfile(os.path.join(crate_dir, f)))
        licence = spdx(p.get("license")) or "see the licence file"
        out.append("=" * 78)
        out.append(f"{p['name']} {p['version']}: {licence}")
        if p.get("repository"):
            out.append(p["repository"])
        out.append("=" * 78)
        if not files:
            if pid != root:
                missing.append(f"{p['name']} {p['version']}")
            out.append("(this crate ships no licence file)")
            out.append("")
        for f in files:
            out.append(f"--- {f}")
            with open(os.path.join(crate_dir, f), encoding="utf-8", errors="replace") as fh:
                out.append(fh.read().rstrip("\n"))
            out.append("")
    sys.stdout.write("\n".join(out) + "\n")
    if missing:
        print("release-meta.py: crates without a licence file: " + ", ".join(missing),
              file=sys.stderr)
        return 1
    return 0


def main(argv):
    if len(argv) != 3 or argv[1] not in ("sbom", "notices"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return sbom(argv[2]) if argv[1] == "sbom" else notices(argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
