"""``{jwt.NAME}``: JSON Web Tokens, made fresh at every render. The only importer of PyJWT
(with ``cryptography`` for RS256, ES256 and EdDSA); its errors are translated here.

PyJWT is imported on first use: with ``cryptography`` it costs a cold start about 60 ms, which
only configs that sign JWTs should pay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.config.http_specs import JwtSpec
from bridge.config.model import SourceConfig
from bridge.routing.context import Context, TemplateError
from bridge.upstream.signing import Made, sign


def key_problem(algorithm: str, key: str) -> str | None:
    """Why ``key`` cannot sign with ``algorithm`` (never quoting it), or None."""
    import jwt  # noqa: PLC0415 - on first use, see the module docstring
    from jwt.algorithms import get_default_algorithms  # noqa: PLC0415

    algorithms = get_default_algorithms()
    if algorithm not in algorithms:
        return f"{algorithm} needs the cryptography package"
    try:
        algorithms[algorithm].prepare_key(key)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        return f"the key cannot sign {algorithm} ({type(exc).__name__})"
    if algorithm.startswith("HS") and "PRIVATE KEY" in key:
        return f"{algorithm} takes a shared secret, not a private key"
    return None


def make_token(spec: JwtSpec, ctx: Context) -> str:
    """The token: ``claims`` rendered with ``ctx``, nbf = now, exp = now + ttl."""
    import jwt  # noqa: PLC0415 - on first use, see the module docstring

    claims: Any = spec.claims.render(ctx)
    headers: Any = spec.headers.render(ctx)
    now = int(ctx.now)
    try:
        return jwt.encode({**claims, "nbf": now, "exp": now + int(spec.ttl)}, spec.key,
                          algorithm=spec.algorithm, headers=headers or None)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TemplateError(f"{{jwt.{spec.name}}}: cannot sign ({type(exc).__name__})") from None


def made_per_render(cfg: SourceConfig) -> dict[str, Callable[[Context], Any]]:
    """The namespaces ``{sign...}`` and ``{jwt...}`` of ``cfg``, made afresh for each render."""
    signs, jwts = {s.name: s for s in cfg.sign}, {j.name: j for j in cfg.jwt}
    out: dict[str, Callable[[Context], Any]] = {}
    if signs:
        out["sign"] = lambda ctx: Made(signs, sign, ctx)
    if jwts:
        out["jwt"] = lambda ctx: Made(jwts, make_token, ctx)
    return out
