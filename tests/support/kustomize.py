"""Renders a kustomization the way `kustomize build` does, for the features the manifests
under deploy/k8s use and no others: no kustomize binary can be installed from the package
indexes this project uses, and the manifests test must run offline.

Supported: `resources` (files and directories with their own kustomization), `namespace`,
`labels` (metadata only: `includeSelectors` and `includeTemplates` false), `images`
(`newName`, `newTag`, `digest`), `replicas`, `patches` (a strategic-merge patch file that
names its object, or an inline JSON 6902 patch with a `target` kind and optional name:
`add`, `replace`, `remove`), and `configMapGenerator` / `secretGenerator` with `literals`
and `options.disableNameSuffixHash: true`. Anything else in a kustomization is refused, so
an overlay that starts using another feature fails the test instead of rendering wrong.

Strategic merge: maps merge key by key; a list whose items are maps with a `name` merges
item by item on that name (containers, env, volumes); any other list is replaced.
"""
from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches",
                "configMapGenerator", "secretGenerator"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass"}


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not do."""


def build(directory: str | Path) -> list[dict[str, Any]]:
    """Every object the kustomization in `directory` produces, in order."""
    directory = Path(directory)
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise Unsupported(f"{directory}: fields not supported: {sorted(unknown)}")
    objects: list[dict] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    objects += [_generated(gen, "ConfigMap") for gen in spec.get("configMapGenerator", [])]
    objects += [_generated(gen, "Secret") for gen in spec.get("secretGenerator", [])]
    for patch in spec.get("patches", []):
        _apply_patch(directory, objects, patch)
    for replica in spec.get("replicas", []):
        found = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == replica["name"]]
        if not found:
            raise Unsupported(f"replicas: no Deployment named {replica['name']}")
        for obj in found:
            obj["spec"]["replicas"] = replica["count"]
    for image in spec.get("images", []):
        _set_image(objects, image)
    for label in spec.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise Unsupported("labels: only metadata labels (includeSelectors/includeTemplates false)")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _generated(gen: dict, kind: str) -> dict:
    if set(gen) - {"name", "literals", "options"}:
        raise Unsupported(f"{kind} generator: only name, literals and options")
    if not (gen.get("options") or {}).get("disableNameSuffixHash"):
        raise Unsupported(f"{kind} generator {gen['name']}: set options.disableNameSuffixHash")
    data = dict(literal.split("=", 1) for literal in gen.get("literals", []))
    if kind == "Secret":
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]}, "type": "Opaque",
                "data": encoded}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}


def _apply_patch(directory: Path, objects: list[dict], patch: dict) -> None:
    if "path" in patch and "target" not in patch:
        body = yaml.safe_load((directory / patch["path"]).read_text())
        targets = [o for o in objects if o["kind"] == body["kind"] and o["metadata"]["name"] == body["metadata"]["name"]]
        if len(targets) != 1:
            raise Unsupported(f"patch {patch['path']}: {len(targets)} objects match {body['kind']}/{body['metadata']['name']}")
        merged = strategic_merge(targets[0], body)
        objects[objects.index(targets[0])] = merged
        return
    if "patch" in patch and "target" in patch:
        target = patch["target"]
        if set(target) - {"kind", "name"}:
            raise Unsupported("patch target: only kind and name")
        ops = yaml.safe_load(patch["patch"])
        matched = [o for o in objects if o["kind"] == target["kind"]
                   and ("name" not in target or o["metadata"]["name"] == target["name"])]
        if not matched:
            raise Unsupported(f"patch target {target} matches nothing")
        for obj in matched:
            for op in ops:
                json_patch(obj, op)
        return
    raise Unsupported(f"patch {patch}: a strategic-merge file (path) or an inline JSON patch with a target")


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged = copy.deepcopy(base)
        for item in patch:
            names = [m["name"] for m in merged]
            if item["name"] in names:
                i = names.index(item["name"])
                merged[i] = strategic_merge(merged[i], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _named(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def json_patch(obj: dict, op: dict) -> None:
    """One JSON 6902 operation (add, replace, remove) on a path of keys and list indexes."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
    parent = obj
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, op["value"])
        elif kind == "replace":
            parent[index] = op["value"]
        elif kind == "remove":
            del parent[index]
        else:
            raise Unsupported(f"JSON patch op {kind}")
        return
    if kind == "add":
        parent[last] = op["value"]
    elif kind == "replace":
        if last not in parent:
            raise Unsupported(f"JSON patch replace of a missing {op['path']}")
        parent[last] = op["value"]
    elif kind == "remove":
        del parent[last]
    else:
        raise Unsupported(f"JSON patch op {kind}")


def _set_image(objects: list[dict], image: dict) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise Unsupported("images: only name, newName, newTag, digest")
    for obj in objects:
        pod = (obj.get("spec") or {}).get("template", {}).get("spec") if obj["kind"] == "Deployment" else None
        if not pod:
            continue
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name, tag, digest = split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            else:
                tag = image.get("newTag", tag)
                container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def split_image(ref: str) -> tuple[str, str, str]:
    """(name, tag, digest) of an image reference; a registry port is not a tag."""
    ref, _, digest = ref.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:], digest
    return ref, "", digest


if __name__ == "__main__":
    import sys
    print(yaml.safe_dump_all(build(sys.argv[1]), sort_keys=False), end="")
