"""Search spaces: every candidate is a valid network, and a bad YAML names the file, the key and what is allowed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nets import mbconv_blocks
from tinycompile.errors import UserError
from tinycompile.search.mbconv import scale_channels
from tinycompile.search.space import available_spaces, load_space


def test_the_three_spaces_ship() -> None:
    assert {"cnn1d", "cnn2d", "mlp"} <= set(available_spaces())


@pytest.mark.parametrize("name,shape", [("cnn1d", (1, 1, 40)), ("cnn2d", (1, 8, 8)), ("mlp", (1, 8, 8))])
def test_random_candidates_are_valid_and_use_the_choices(name: str, shape) -> None:
    space = load_space(name)
    rng = random.Random(0)
    ops_seen: set[str] = set()
    for _ in range(300):
        choices = space.random_choices(rng)
        spec = space.build(choices, shape, 10)  # ArchSpec validates its own graph
        assert spec.shapes()[-1] == (10, 1, 1)
        ops_seen |= {layer.op for layer in spec.layers}
        if space.family == "cnn":
            assert spec.layers[0].channels == choices["stem.channels"]
            blocks = sum(1 for l in spec.layers if l.op == "conv") - 1  # pointwise or standard conv per block
            assert blocks == choices["blocks.count"]
        else:
            assert [l.channels for l in spec.layers[1:-1]] == [choices[f"block{i}.units"] for i in range(choices["blocks.count"])]
    if name != "mlp":
        assert {"conv", "dwconv", "add", "maxpool", "avgpool", "gap", "flatten", "dense"} <= ops_seen


def test_residual_adds_only_join_equal_shapes() -> None:
    space = load_space("cnn1d")
    rng = random.Random(3)
    adds = 0
    for _ in range(300):
        spec = space.build(space.random_choices(rng), (1, 1, 40), 10)
        shapes = spec.shapes()
        for layer in spec.layers:
            if layer.op == "add":
                adds += 1
                a, b = layer.inputs
                assert shapes[a] == shapes[b]
    assert adds > 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ninput: 3d\n", "key 'input' must be one of 1d, 2d, any"),
        ("input: any\nblocks:\n  count: [1]\n  units: [8, -4]\n", "key 'blocks.units' must list integers >= 1, but got -4"),
        ("input: any\nblocks:\n  count: [1]\n  units: []\n", "key 'blocks.units' must be a non-empty list"),
        ("input: any\nblocks:\n  count: [1]\n  units: [8]\n  colour: [red]\n", "unknown key 'blocks.colour'; allowed: count, units"),
        ("input: 1d\nstem: {channels: [8], kernel: [3], stride: [1]}\nblocks: {count: [1], type: [conv, fancy], "
         "channels: [8], kernel: [3], stride: [1], pool: [none], residual: [false]}\nhead: {reduce: [gap], hidden: [0]}\n",
         "key 'blocks.type' allows conv, dwsep, but got 'fancy'"),
        ("input: any\nblocks: [1, 2\n", "not valid YAML"),
        ("input: 1d\nblocks: {count: [1]}\n", "missing section 'stem'"),
    ],
)
def test_bad_yaml_names_file_key_and_allowed_values(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_space(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_input_kind_must_fit_the_task() -> None:
    with pytest.raises(UserError, match="takes 1-D signals"):
        load_space("cnn1d").check_input((1, 8, 8))
    with pytest.raises(UserError, match="takes 2-D images"):
        load_space("cnn2d").check_input((1, 1, 40))


def deep_space(tmp_path: Path, count: int) -> str:
    path = tmp_path / "deep.yaml"
    text = (Path(__file__).parent.parent / "search_spaces" / "cnn1d.yaml").read_text()
    path.write_text(text.replace("count: [1, 2, 3, 4]", f"count: [{count}]"))
    return str(path)


@pytest.mark.timeout(120)  # the budget probe used to build 3000 candidates of 5000 blocks, quadratically: hours
def test_a_space_too_deep_is_refused_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tinycompile.cli import main

    space = deep_space(tmp_path, 5000)
    args = ["search", "--task", "mnist1d", "--space", space, "--target", "cortex-m4", "--out", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "key 'blocks.count' must list integers <= 32" in err and "but got 5000" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("key", "value"), [("channels", 5000), ("kernel", 65), ("stride", 17)])
def test_sizes_are_bounded(tmp_path: Path, key: str, value: int) -> None:
    path = tmp_path / "big.yaml"
    path.write_text((Path(__file__).parent.parent / "search_spaces" / "cnn2d.yaml").read_text()
                    .replace("  kernel: [3]\n", f"  kernel: [{value if key == 'kernel' else 3}]\n")
                    .replace("  channels: [8, 16, 24, 32, 48, 64]", f"  channels: [{value if key == 'channels' else 8}]")
                    .replace("  stride: [1, 2]\n  pool", f"  stride: [{value if key == 'stride' else 1}]\n  pool"))
    with pytest.raises(UserError, match=rf"key 'blocks.{key}' must list integers <= \d+ .*but got {value}"):
        load_space(str(path))


def test_every_block_of_a_deep_candidate_gets_its_own_choices(tmp_path: Path) -> None:
    """Blocks 1 and 10..12 are told apart (their keys share a prefix), in one pass over the choices."""
    space = load_space(deep_space(tmp_path, 12))
    choices = space.random_choices(random.Random(0))
    choices.update({f"block{i}.{k}": v for i in range(12)
                    for k, v in {"type": "conv", "channels": 8 + 8 * (i % 7), "stride": 1, "pool": "none",
                                 "residual": False}.items()})
    spec = space.build(choices, (1, 1, 40), 10)
    convs = [layer.channels for layer in spec.layers if layer.op == "conv"][1:]  # the stem first
    assert convs == [8 + 8 * (i % 7) for i in range(12)]


# --- the mbconv family ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,shape", [("mbconv2d", (1, 8, 8)), ("mbconv1d", (1, 1, 40))])
def test_mbconv_candidates_are_inverted_residual_stages(name: str, shape) -> None:
    space = load_space(name)
    assert space.family == "mbconv" and name in available_spaces()
    rng = random.Random(0)
    seen = {"expansion": set(), "kernel": set(), "residual": set(), "stride": set(), "side": set()}
    for _ in range(300):
        choices = space.random_choices(rng)
        spec = space.build(choices, shape, 10)
        side = choices.get("net.resolution")
        assert spec.input_shape == (shape if side is None else (1, side, side))
        assert spec.meta.get("resolution") == side
        width = choices["net.width"]
        assert spec.layers[0].channels == scale_channels(choices["stem.channels"], width)
        expected = [(s, b) for s in range(3) for b in range(choices[f"stage{s}.depth"])]
        blocks = mbconv_blocks(spec)
        assert len(blocks) == len(expected)
        for (s, b), block in zip(expected, blocks):
            assert block["expansion"] == choices[f"stage{s}.block{b}.expansion"]
            assert block["kernel"] == choices[f"stage{s}.block{b}.kernel"]
            assert block["channels"] == scale_channels(choices[f"stage{s}.channels"], width)
            assert block["stride"] <= (choices[f"stage{s}.stride"] if b == 0 else 1)
            assert block["residual"] == (block["stride"] == 1 and block["channels"] == block["in_channels"])
            for key in ("expansion", "kernel", "residual", "stride"):
                seen[key].add(block[key])
        seen["side"].add(side)
        assert all(layer.channels % 8 == 0 for layer in spec.layers if layer.op == "conv")
        assert spec.layers[-1].op == "dense" and spec.layers[-1].channels == 10
    assert seen["expansion"] == {1, 3, 4, 6} and seen["kernel"] == {3, 5, 7}
    assert seen["residual"] == {False, True} and seen["stride"] == {1, 2}
    assert seen["side"] == ({8, 12, 16} if name == "mbconv2d" else {None})


@pytest.mark.parametrize(("channels", "width", "scaled"),
                         [(16, 1.0, 16), (16, 0.5, 8), (8, 0.5, 8), (16, 0.75, 16), (24, 0.75, 16), (40, 0.5, 24),
                          (48, 0.75, 40), (32, 2, 64)])
def test_the_width_multiplier_rounds_to_multiples_of_8(channels: int, width: float, scaled: int) -> None:
    assert scale_channels(channels, width) == scaled


MBCONV = Path(__file__).parent.parent / "search_spaces" / "mbconv2d.yaml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("family: mbconv", "family: resnet", "key 'family' must be one of cnn, mlp, mbconv, but got 'resnet'"),
        ("input: 2d", "input: any", "family mbconv takes input 1d or 2d, but got input any"),
        ("  width: [0.5, 0.75, 1.0]", "  width: [0.5, 0]", "key 'net.width' must list numbers > 0, but got 0"),
        ("  width: [0.5, 0.75, 1.0]", "  width: [.nan]", "key 'net.width' must list numbers > 0, but got nan"),
        ("  width: [0.5, 0.75, 1.0]", "  width: [8]", "key 'net.width' must list numbers <= 4"),
        ("  resolution: [8, 12, 16]", "  resolution: [8, 300]", "key 'net.resolution' must list integers <= 256"),
        ("  expansion: [1, 3, 4, 6]", "  expansion: [1, 16]", "key 'blocks.expansion' must list integers <= 8"),
        ("{depth: [1, 2, 3], channels: [24, 32]", "{depth: [1, 0], channels: [24, 32]",
         "key 'stages[1].depth' must list integers >= 1, but got 0"),
        ("{depth: [1, 2, 3], channels: [24, 32], stride: [2]}", "{depth: [1], channels: [24], strides: [2]}",
         "unknown key 'stages[1].strides'; allowed: depth, channels, stride"),
        ("{depth: [1, 2, 3], channels: [32, 48]", "{depth: [30], channels: [32, 48]",
         "the stages' largest depths add up to 35 blocks; at most 32"),
        ("stages:", "stage:", "unknown key 'stage'"),
    ],
)
def test_bad_mbconv_yaml_is_one_line_naming_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = MBCONV.read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(UserError) as err:
        load_space(str(path))
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_stages_must_be_a_list_and_resolution_is_for_images(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    text = MBCONV.read_text()
    path.write_text(text[: text.index("stages:")] + "stages: {depth: [1]}\n" + text[text.index("blocks:"):])
    with pytest.raises(UserError, match="missing section 'stages' \\(a non-empty list of mappings"):
        load_space(str(path))
    path.write_text(text.replace("input: 2d", "input: 1d"))
    with pytest.raises(UserError, match="key 'net.resolution' resizes 2-D images, but this space takes input 1d"):
        load_space(str(path))
    path.write_text(text.replace("  resolution: [8, 12, 16]", ""))  # optional: then the task's own size
    space = load_space(str(path))
    spec = space.build(space.random_choices(random.Random(0)), (1, 8, 8), 10)
    assert spec.input_shape == (1, 8, 8) and "resolution" not in spec.meta


def test_the_keys_that_choose_where_networks_down_sample_are_named() -> None:
    assert load_space("cnn1d").scale_choices() == ["stem.stride", "blocks.stride", "blocks.pool"]
    assert load_space("mbconv1d").scale_choices() == ["stem.stride"]  # each stage's stride has one value
    assert load_space("cnn1d-shared").scale_choices() == []  # the space for weight sharing fixes them
