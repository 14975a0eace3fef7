"""Run-time namespaces: what the session fills in while it runs, read by placeholders."""

from __future__ import annotations

import pytest

from bridge.routing.context import Context, TemplateError
from bridge.routing.template import Template
from bridge.upstream.render import Renderer


def test_a_namespace_placeholder_walks_into_the_value_the_session_filled_in() -> None:
    render = Renderer("src", "", lambda: 0.0)
    render.names["http"] = {"bullet": {"json": {"data": {"servers": [{"ping": 18000}]}}}}
    template = Template({"interval": "{http.bullet.json.data.servers[0].ping}",
                         "text": "ping every {http.bullet.json.data.servers[0].ping}ms"})
    assert template.render(render.context(0.0)) == {"interval": 18000,
                                                    "text": "ping every 18000ms"}


def test_a_namespace_read_before_it_has_a_value_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match=r"\{http.key.json.k\}: http 'key' has no value"):
        Template("{http.key.json.k}").render(Context())
    with pytest.raises(TemplateError, match="needs a name"):
        Template("{http}")


def test_derived_namespaces_are_made_afresh_for_each_render_from_its_context() -> None:
    render = Renderer("src", "", iter([1.0, 2.0]).__next__)
    render.derived["sign"] = lambda ctx: {"t": f"signed at {ctx.now:g}"}
    assert Template("{sign.t}").render(render.context(0.0)) == "signed at 1"
    assert Template("{sign.t}").render(render.context(0.0)) == "signed at 2"
