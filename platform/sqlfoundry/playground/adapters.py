"""GET /v1/adapters: the registry's adapters, their versions, aliases and manifest metrics, for the
playground's Adapters tab. Read-only; manifests are untrusted (registry.py), so only plain numbers
and short strings are passed on."""

from __future__ import annotations

from sqlfoundry.storage.registry import Registry, RegistryError

MAX_VERSIONS = 10  # newest versions per adapter: each is one manifest read from storage
MAX_CURVE_POINTS = 2000


def _numbers(values: object) -> dict:
    if not isinstance(values, dict):
        return {}
    return {str(k)[:64]: v for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None}


def _curve(points: object) -> list[dict]:
    """[{step, loss?, eval_loss?}] from a manifest's training_curve, when the run recorded one."""
    if not isinstance(points, list):
        return []
    curve = []
    for point in points[:MAX_CURVE_POINTS]:
        if isinstance(point, dict) and isinstance(point.get("step"), int):
            curve.append({"step": point["step"], **{k: v for k, v in _numbers(point).items()
                                                    if k in ("loss", "eval_loss")}})
    return curve


def _version(registry: Registry, name: str, version: str, aliases: list[str]) -> dict:
    try:
        manifest = registry.manifest(name, version)
    except RegistryError as err:
        return {"version": version, "aliases": aliases, "error": str(err)[:300]}
    base = manifest.get("base_model")
    return {"version": version, "aliases": aliases, "created": str(manifest.get("created", ""))[:40],
            "base_model": base[:200] if isinstance(base, str) else None,
            "metrics": _numbers(manifest.get("metrics")), "curve": _curve(manifest.get("training_curve"))}


def list_adapters(registry: Registry | None) -> dict:
    if registry is None:
        return {"object": "list", "registry": False, "data": []}
    data = []
    for name in registry.names():
        aliases = registry.aliases(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in sorted(aliases.items()):
            by_version.setdefault(version, []).append(alias)
        versions = registry.versions(name)
        data.append({"name": name, "versions_total": len(versions), "aliases": aliases,
                     "versions": [_version(registry, name, v, by_version.get(v, []))
                                  for v in reversed(versions[-MAX_VERSIONS:])]})
    return {"object": "list", "registry": True, "data": data}
