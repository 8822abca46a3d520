"""LTX-2.5 split files through the cache manager: the real huggingface_hub client pulls tiny
2.5 files (written in the released layout by `models.tiny_ltx25`) from the local hub stand-in
under the paths of the gated `Lightricks/LTX-2.5` repository (ltx-2.5.md §1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMMIT, GOOD_TOKEN, run_ltx2, sha256

from ltx2cli.errors import ModelNotInstalledError
from ltx2cli.hub.catalog import BUILTIN
from ltx2cli.hub.resolve import role_path
from ltx2cli.models.tiny_ltx25 import FILES, write_tiny_ltx25

REPO = "Lightricks/LTX-2.5"
# The quick start of the 1.2.0 README (distilled): transformer, text encoder, diffusion video
# VAE, audio VAE and spatial upscaler, as tiny_ltx25 names them.
QUICK_START = ("transformer", "text_encoder", "video_vae", "audio_vae", "spatial_upscaler")


@pytest.fixture(scope="module")
def tiny25(tmp_path_factory) -> dict[str, bytes]:
    """Hub path → bytes of every tiny 2.5 file (written once for the module)."""
    root = tmp_path_factory.mktemp("tiny-ltx25")
    written = write_tiny_ltx25(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in written.values()}


@pytest.fixture
def hub25(hub_env, tiny25, tmp_path, monkeypatch):
    """The stand-in hub serving the tiny files in a gated `Lightricks/LTX-2.5`, and a catalog
    of the built-in 2.5 entries whose sizes and hashes are those of the tiny files."""
    hub_env.repos[REPO] = dict(tiny25)
    hub_env.gated.add(REPO)
    data = json.loads(json.dumps(BUILTIN.to_dict()))  # plain lists, editable
    artifacts = []
    for a in data["artifacts"]:
        if a["repo"] == REPO and a["files"][0]["name"] in tiny25:
            blob = tiny25[a["files"][0]["name"]]
            a["files"][0] |= {"size": len(blob), "sha256": sha256(blob), "exact": True}
            artifacts.append(a)
    catalog = tmp_path / "catalog25.json"
    catalog.write_text(json.dumps({"artifacts": artifacts, "roles": {"2.5": data["roles"]["2.5"]}}))
    monkeypatch.setenv("LTX2_CATALOG", str(catalog))
    return hub_env


def snapshot(home: Path) -> Path:
    return home / "hub" / "models--Lightricks--LTX-2.5" / "snapshots" / COMMIT


def test_pull_for_distilled_25_fetches_every_quick_start_file(hub25, tiny25, _isolated_home):
    proc = run_ltx2("models", "pull", "--for", "distilled", "--generation", "2.5", "-y",
                    HF_TOKEN=GOOD_TOKEN)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = {FILES[n] for n in QUICK_START}
    got = {str(p.relative_to(snapshot(_isolated_home))) for p in snapshot(_isolated_home).rglob("*")
           if p.is_file()}  # fmt: skip
    assert got == expected
    for name in expected:
        assert (snapshot(_isolated_home) / name).read_bytes() == tiny25[name]
    asked = {p.split("/resolve/main/")[1] for _, p, _ in hub25.requests if "/resolve/" in p}
    assert asked == expected  # nothing else of the repository was asked for
    assert len(hub25.gets("/cdn/")) == len(expected)
    # the optional duration head is named, not fetched
    assert "ltx2 models pull ltx-2.5-duration-head" in proc.stderr
    # every pulled file verifies against the hub's sha256 and the catalog's
    verify = run_ltx2("models", "verify", "--json")
    assert verify.returncode == 0, verify.stderr
    checks = [json.loads(line) for line in verify.stdout.splitlines()]
    assert {c["file"] for c in checks} == expected
    assert {c["status"] for c in checks} == {"ok"}


def test_the_split_files_are_listed_with_their_kinds_and_fill_the_roles(hub25, _isolated_home):
    proc = run_ltx2("models", "pull", "--for", "distilled", "-g", "2.5", "-y",
                    HF_TOKEN=GOOD_TOKEN)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = run_ltx2("models", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    kinds = {row["name"]: row["kind"] for row in rows}
    assert kinds == {
        "ltx-2.5-22b-distilled": "transformer",
        "gemma-4-12b-ltx-2.5": "text-encoder",
        "ltx-2.5-video-vae": "video-vae",
        "ltx-2.5-audio-vae": "audio-vae",
        "ltx-2.5-spatial-upscaler-x2": "upsampler",
    }
    snap = snapshot(_isolated_home)
    assert role_path("distilled", "2.5", "video-vae") == snap / FILES["video_vae"]
    assert role_path("distilled", "2.5", "text-encoder") == snap / FILES["text_encoder"]
    with pytest.raises(ModelNotInstalledError) as caught:
        role_path("distilled", "2.5", "duration-head")
    assert caught.value.hint == "ltx2 models pull ltx-2.5-duration-head"
    head = run_ltx2("models", "pull", "ltx-2.5-duration-head", "-y", HF_TOKEN=GOOD_TOKEN)
    assert head.returncode == 0, head.stderr
    assert role_path("distilled", "2.5", "duration-head") == snap / FILES["duration_head"]


def test_dry_run_plans_the_25_files_with_sizes_without_the_network(hub25, tiny25):
    proc = run_ltx2("models", "pull", "--for", "distilled", "-g", "2.5", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {f for p in plan for f in p["files"]} == {FILES[n] for n in QUICK_START}
    for p in plan:
        assert p["size"] == len(tiny25[p["files"][0]])
        assert p["repo"] == REPO and p["gated"] is True
        assert p["licence"] == "LTX-2.x Community License Agreement"
    text = run_ltx2("models", "pull", "--for", "distilled", "-g", "2.5", "--dry-run")
    total = sum(len(tiny25[FILES[n]]) for n in QUICK_START)
    assert f"({total / 2**30:.1f} GiB) to download" in text.stderr
    assert hub25.requests == []


def test_the_builtin_distilled_25_plan_is_about_66_gib(_isolated_home, monkeypatch):
    monkeypatch.delenv("LTX2_CATALOG", raising=False)
    proc = run_ltx2("models", "pull", "--for", "distilled", "-g", "2.5", "--dry-run",
                    LTX2_OFFLINE="1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Total ≈71.11 GB (66.2 GiB) to download" in proc.stderr
    assert len(proc.stdout.splitlines()) == len(QUICK_START)
    assert all("gated: accept the licence" in line for line in proc.stdout.splitlines())


def test_gated_25_repo_without_access_is_one_line_with_the_hint(hub25, _isolated_home):
    proc = run_ltx2("models", "pull", "--for", "distilled", "-g", "2.5", "-y")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: {REPO} is gated: your account has not been granted access to "
        "'ltx-2.5-22b-distilled' (LTX-2.x Community License Agreement)"
    ]
    hint = proc.stderr.splitlines()[proc.stderr.splitlines().index(errors[0]) + 1]
    assert hint.startswith("Hint: open https://huggingface.co/Lightricks/LTX-2.5, accept")
    assert "HF_TOKEN" in hint
    assert not (_isolated_home / "hub" / "models--Lightricks--LTX-2.5" / "snapshots").exists()


def test_available_lists_25_and_its_kinds(hub25):
    proc = run_ltx2("models", "available", "-g", "2.5", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {json.loads(line)["name"]: json.loads(line) for line in proc.stdout.splitlines()}
    assert {r["generation"] for r in rows.values()} == {"2.5"}
    assert rows["ltx-2.5-duration-head"]["kind"] == "duration-head"
    assert rows["ltx-2.5-22b-dev"]["kind"] == "transformer"


@pytest.mark.parametrize(
    ("tiny_name", "kind"),
    [
        ("dev_transformer", "transformer"),
        ("text_encoder", "text-encoder"),
        ("video_vae_conv", "video-vae"),
        ("audio_vae", "audio-vae"),
        ("duration_head", "duration-head"),
        ("temporal_upscaler", "upsampler"),
        ("distilled_lora", "lora"),
    ],
)
def test_a_25_split_file_imports_with_its_kind(hub25, tiny25, tmp_path, tiny_name, kind):
    path = tmp_path / Path(FILES[tiny_name]).name
    path.write_bytes(tiny25[FILES[tiny_name]])
    proc = run_ltx2("models", "import", str(path), "--as", "mine", "--kind", kind, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == kind
    wrong = "checkpoint" if kind != "checkpoint" else "lora"
    refused = run_ltx2("models", "import", str(path), "--as", "other", "--kind", wrong)
    assert refused.returncode == 2
    assert f"its tensors are those of: {kind}" in refused.stderr
    assert f"pass --kind {kind}" in refused.stderr


def test_a_25_file_imported_under_its_catalog_name_verifies(hub25, tiny25, tmp_path):
    path = tmp_path / "my-vae.safetensors"
    path.write_bytes(tiny25[FILES["video_vae"]])
    proc = run_ltx2("models", "import", str(path), "--as", "ltx-2.5-video-vae")
    assert proc.returncode == 0, proc.stderr
    listed = [json.loads(line) for line in run_ltx2("models", "list", "--json").stdout.splitlines()]
    assert [(i["name"], i["kind"], i["source"]) for i in listed] == [
        ("ltx-2.5-video-vae", "video-vae", "import")
    ]
    assert role_path("distilled", "2.5", "video-vae") == path
    ok = run_ltx2("models", "verify", "ltx-2.5-video-vae", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = run_ltx2("models", "verify", "ltx-2.5-video-vae", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout.splitlines()[0])["status"] == "corrupt"


def test_the_catalog_commands_offer_25_as_a_generation():
    for command in ("available", "pull"):
        proc = run_ltx2("models", command, "--help")
        assert "2.5 for LTX-2.5 (22B)" in " ".join(proc.stdout.split()), command
