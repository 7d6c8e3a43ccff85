"""The source through the same path as ``meshsync run``: plugin loading and option parsing."""

from __future__ import annotations

from meshsync_testkit.fake_apiserver import FakeApiServer, demo_cluster

from meshsync_core import api


async def test_arun_with_go_style_options(server: FakeApiServer, kubeconfig, capsys) -> None:
    server.load(demo_cluster())
    result = await api.arun(
        source="kubernetes",  # the alias
        outputs=["console"],
        options={
            "kubeconfig": str(kubeconfig),
            "resources": "pod,deployment",  # a comma string, as in a --config file
            "namespaces": ["shop"],
            "once": True,
        },
    )
    assert result.exit_code == 0, result.reason
    out = capsys.readouterr().out
    pods = [
        o["metadata"]["name"]
        for o in server.objects("pods")
        if o["metadata"]["namespace"] == "shop"
    ]
    assert pods and all(f"shop/{name}" in out for name in pods)
    assert "deployments" in out and "configmaps" not in out


async def test_arun_reports_config_errors(kubeconfig) -> None:
    result = await api.arun(
        source="k8s", outputs=["console"], options={"kubeconfig": str(kubeconfig), "context": "x"}
    )
    assert result.exit_code == 2 and "context 'x' not found" in result.reason
