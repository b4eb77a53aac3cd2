"""topokd.config: typed configs from YAML mappings, exact error messages,
overrides; the experiment and compression schemas built on it."""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union, get_args

import pytest
import yaml

from topokd.cli import main
from topokd.config import ConfigError, apply_overrides, build_value, from_dict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# --------------------------------------------------------------------------- a schema of every kind
@dataclass
class Inner:
    __config_shorthand__ = "name"

    name: str = "x"
    size: int = 3

    def __post_init__(self):
        if self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")
        if self.name == "forbidden":
            raise ValueError("this name is reserved")


@dataclass
class Add:
    __config_tag__ = "add"

    amount: float


@dataclass
class Drop:
    __config_tag__ = "drop"

    count: int = 1


@dataclass
class Schema:
    count: int
    rate: float = 0.5
    flag: bool = False
    label: str = "a"
    maybe: str | None = None
    mode: Literal["fast", "slow"] = "fast"
    sizes: list[int] = field(default_factory=list)
    pair: tuple[float, ...] = (1.0, 2.0)
    table: dict[str, Inner] = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)
    either: str | int = "best"
    where: Path | None = None
    ops: list[Union[Add, Drop]] = field(default_factory=list)
    free: dict = field(default_factory=dict)


def error(raw, cls=Schema, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(cls, raw, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, ValueError)
    return message


def test_a_valid_mapping_builds_nested_dataclasses(tmp_path):
    cfg = from_dict(Schema, {"count": 2, "rate": 1, "flag": True, "maybe": None, "mode": "slow",
                             "sizes": [1, 2], "pair": [3, 4.5], "table": {"a": {"size": 5}, "b": "short"},
                             "inner": None, "either": 7, "where": "sub/file.txt",
                             "ops": [{"add": {"amount": 2}}, {"drop": None}], "free": {"k": [1]}},
                    base_dir=tmp_path)
    assert cfg.count == 2 and cfg.rate == 1.0 and isinstance(cfg.rate, float) and cfg.flag is True
    assert cfg.mode == "slow" and cfg.sizes == [1, 2] and cfg.pair == (3.0, 4.5)
    assert cfg.table == {"a": Inner("x", 5), "b": Inner("short", 3)}  # shorthand: a bare value is the name
    assert cfg.inner == Inner() and cfg.either == 7
    assert cfg.where == tmp_path / "sub" / "file.txt"  # relative paths against base_dir
    assert cfg.ops == [Add(2.0), Drop(1)] and cfg.free == {"k": [1]}
    assert from_dict(Schema, {"count": 1, "where": "/abs/x"}, base_dir=tmp_path).where == Path("/abs/x")
    assert from_dict(Schema, {"count": 1, "either": "last"}).either == "last"
    # YAML 1.1 reads 1e-3 (no dot) as a string: a number field takes it as the number
    assert from_dict(Schema, {"count": 1, "rate": "1e-3"}).rate == 1e-3
    assert from_dict(Schema, {"count": 1, "rate": "-2.5E2"}).rate == -250.0


@pytest.mark.parametrize("raw, message", [
    ({"count": "three"}, "count must be an integer, got 'three'"),
    ({"count": 1.5}, "count must be an integer, got 1.5"),
    ({"count": True}, "count must be an integer, got True"),  # a bool is not an int
    ({"count": 1, "rate": "half"}, "rate must be a number, got 'half'"),
    ({"count": 1, "rate": False}, "rate must be a number, got False"),
    ({"count": 1, "rate": "e3"}, "rate must be a number, got 'e3'"),
    ({"count": "1e3"}, "count must be an integer, got '1e3'"),
    ({"count": 1, "flag": 1}, "flag must be a boolean (true/false), got 1"),
    ({"count": 1, "flag": "true"}, "flag must be a boolean (true/false), got 'true'"),
    ({"count": 1, "label": 5}, "label must be a string, got 5"),
    ({"count": 1, "maybe": 5}, "maybe must be a string or null, got 5"),
    ({"count": 1, "mode": "fats"}, "mode must be one of 'fast', 'slow', got 'fats' (did you mean 'fast'?)"),
    ({"count": 1, "mode": "medium"}, "mode must be one of 'fast', 'slow', got 'medium'"),
    ({"count": 1, "sizes": 3}, "sizes must be a list, got 3"),
    ({"count": 1, "sizes": [1, "two"]}, "sizes[1] must be an integer, got 'two'"),
    ({"count": 1, "pair": [1, None]}, "pair[1] must be a number, got None"),
    ({"count": 1, "table": [1]}, "table must be a mapping, got [1]"),
    ({"count": 1, "table": {"a": {"size": "big"}}}, "table.a.size must be an integer, got 'big'"),
    ({"count": 1, "inner": {"size": 2.5}}, "inner.size must be an integer, got 2.5"),
    ({"count": 1, "inner": []}, "inner must be a mapping (or just its name), got []"),
    ({"count": 1, "either": 1.5}, "either must be a string or an integer, got 1.5"),
    ({"count": 1, "where": 3}, "where must be a path or null, got 3"),
    ({"count": 1, "ops": [{"add": {"amount": "x"}}]}, "ops[0].add.amount must be a number, got 'x'"),
    ({"count": 1, "ops": [{"add": {}}]}, "ops[0].add needs 'amount' (a number)"),
    ({"count": 1, "ops": ["add"]}, "ops[0] must be a one-key mapping like {add: {...}} (add, drop), got 'add'"),
    ({"count": 1, "ops": [{"ad": {}}]}, "ops[0]: unknown key 'ad' (did you mean 'add'?); allowed: add, drop"),
    ({"count": 1, "free": 3}, "free must be a mapping, got 3"),
    ({}, "the config needs 'count' (an integer)"),
])
def test_type_errors_name_the_key_and_the_expected_type(raw, message):
    assert error(raw) == message


def test_unknown_keys_say_did_you_mean_and_list_the_allowed_ones():
    allowed = ("allowed: count, either, flag, free, inner, label, maybe, mode, ops, pair, rate, sizes, table, "
               "where")
    assert error({"count": 1, "cuont": 2}) == f"unknown top-level key 'cuont' (did you mean 'count'?); {allowed}"
    assert error({"count": 1, "zzz": 2, "rtae": 1}) == \
        f"unknown top-level keys 'zzz', 'rtae' (did you mean 'rate'?); {allowed}"
    assert error({"count": 1, "table": {"a": {"sise": 1}}}) == \
        "table.a: unknown key 'sise' (did you mean 'size'?); allowed: name, size"


def test_post_init_errors_get_the_path():
    # a message that starts with a field name continues the dotted path ...
    assert error({"count": 1, "inner": {"size": -1}}) == "inner.size must be >= 0, got -1"
    assert error({"count": 1, "table": {"k": {"size": -2}}}) == "table.k.size must be >= 0, got -2"
    # ... any other message is prefixed with the dataclass's path
    assert error({"count": 1, "inner": "forbidden"}) == "inner: this name is reserved"
    # at the top level the message stays as it is
    assert error({"size": -1}, Inner) == "size must be >= 0, got -1"


def test_top_level_must_be_a_mapping_and_from_dict_needs_a_dataclass():
    assert error([1, 2]) == "the config must be a YAML mapping (key: value lines), got [1, 2]"
    with pytest.raises(TypeError, match="needs a dataclass"):
        from_dict(dict, {})
    assert build_value(list[int], [1, 2], "x") == [1, 2]
    with pytest.raises(ConfigError, match=r"^x\[0\] must be an integer, got 'a'$"):
        build_value(list[int], ["a"], "x")


# --------------------------------------------------------------------------- overrides
def test_apply_overrides_sets_dotted_keys_with_yaml_values():
    raw = {"student": {"train": {"epochs": 60}}, "steps": [{"prune": {"amount": 0.5}}, {"finetune": None}]}
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["student.train.epochs=5", "student.train.lr=1e-3", "student.train.amp=false",
                                "student.model=wrn16-1", "steps[0].prune.amount=0.25", "steps[1].finetune.epochs=2",
                                "latency.batch_sizes=[1, 8]", "device=null", "seed = 3"])
    assert out == {"student": {"train": {"epochs": 5, "lr": "1e-3", "amp": False}, "model": "wrn16-1"},
                   "steps": [{"prune": {"amount": 0.25}}, {"finetune": {"epochs": 2}}],
                   "latency": {"batch_sizes": [1, 8]}, "device": None, "seed": 3}
    assert raw == before  # a copy: the input is not changed
    assert apply_overrides(raw, []) == raw and apply_overrides(None, ["a.b=1"]) == {"a": {"b": 1}}
    # the value is typed by YAML, then checked by the schema like any value of the file
    assert error(apply_overrides({}, ["count=three"])) == "count must be an integer, got 'three'"
    assert error(apply_overrides({"count": 1}, ["cuont=2"])).startswith("unknown top-level key 'cuont' (did you mean")


@pytest.mark.parametrize("override, message", [
    ("student.train.epochs", "an override must be KEY=VALUE (e.g. student.train.epochs=5), got 'student.train.epochs'"),
    ("=5", "an override must be KEY=VALUE (e.g. student.train.epochs=5), got '=5'"),
    ("student..epochs=5", "cannot read the key 'student..epochs': write dotted names with optional [index], "
                          "e.g. student.train.epochs or steps[1].prune.amount"),
    ("seed.x=1", "override seed.x: seed is 0, not a mapping, so it has no key 'x'"),
    ("steps[3].prune.amount=1", "override steps[3].prune.amount: steps has 1 entries, so there is no [3]"),
    ("seed[0]=1", "override seed[0]: seed is not a list, so it has no entry [0]"),
    ("seed=[1", "override seed: cannot read '[1' as a YAML value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError) as info:
        apply_overrides({"seed": 0, "steps": [{"prune": {}}]}, [override])
    assert str(info.value).startswith(message)


# --------------------------------------------------------------------------- the experiment config
def experiment(tmp_path) -> dict:
    return {"output": str(tmp_path / "run"), "seed": 3,
            "data": {"name": "synthetic", "synthetic_windows": 60, "synthetic_length": 32},
            "teachers": {"signal": {"model": "resnet8", "inputs": "signal", "train": {"epochs": 1}}},
            "student": {"model": "resnet8", "teachers": ["signal"], "losses": {"ce": 0.5, "kd": 0.5},
                        "train": {"epochs": 1, "progress": False}}}


@pytest.mark.parametrize("key, value, message", [
    ("teachers.signal.train.epochs", "three", "teachers.signal.train.epochs must be an integer, got 'three'"),
    ("student.train.epochs", 1.5, "student.train.epochs must be an integer, got 1.5"),
    ("student.train.epochs", True, "student.train.epochs must be an integer, got True"),
    ("student.train.amp", "yes", "student.train.amp must be a boolean (true/false), got 'yes'"),
    ("student.train.lr", -1, "student.train.lr must be > 0, got -1.0"),
    ("student.train.optimizer", "adan",
     "student.train.optimizer must be one of 'sgd', 'adam', 'adamw', got 'adan' (did you mean 'adam'?)"),
    ("student.train.augment", "mixx", "student.train.augment must be one of 'none', 'removal', 'noise', 'shift', "
                                      "'scale', 'warp', 'window-mix', 'channel-permutation', 'mix1', 'mix2', "
                                      "'surrogate' or null, got 'mixx' (did you mean 'mix2'?)"),
    ("teachers.signal.inputs", "pix", "teachers.signal.inputs must be one of 'signal', 'pi', 'fusion', got 'pix' "
                                      "(did you mean 'pi'?)"),
    ("teachers.signal.inputs", "fusion", "teachers.signal.pi_model is required for inputs 'fusion' and only then"),
    ("teachers.signal.modle", "x", "teachers.signal: unknown key 'modle' (did you mean 'model'?); allowed: "
                                   "inputs, model, name, pi_model, train"),
    ("student.teachers", [{"name": "ghost"}], "student.teachers[0].name is 'ghost', which is not under "
                                              "'teachers' (defined: signal)"),
    ("student.teachers", [{"name": "signal", "checkpoint": "bset"}],
     "student.teachers[0].checkpoint must be one of 'best', 'last' or an integer, got 'bset' (did you mean 'best'?)"),
    ("student.teachers", [{"name": "signal", "weight": -1}], "student.teachers[0].weight must be >= 0, got -1.0"),
    ("student.losses", {"ce": 1, "kdd": 1}, "student.losses: unknown loss 'kdd' (did you mean 'kd'?); available: "
                                            "amd, at, ce, ddgsd, dist, dkd, fitnet, ft, fused_sp, kd, mixup, "
                                            "partial_mixup, pkt, rkd, sp"),
    ("student.losses", {"kd": {"weight": "x"}}, "student.losses.kd.weight must be a number >= 0 (the loss weight), "
                                                "got 'x'"),
    ("student.pi_model", "resnet8", "student: a PI-augmented student needs both 'pinet' (checkpoint) and "
                                    "'pi_model'"),
    ("data.name", "synthtic", "data.name must be one of 'basic-motions', 'synthetic', 'hapt', 'hapt-12' or null, "
                              "got 'synthtic' (did you mean 'synthetic'?)"),
    ("seed", "3", "seed must be an integer, got '3'"),
])
def test_experiment_config_errors(tmp_path, key, value, message):
    from topokd.distill.config import parse_config

    raw = experiment(tmp_path)
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert str(info.value).startswith(message)


def test_experiment_config_defaults_and_paths(tmp_path):
    from topokd.distill.config import ExperimentConfig, parse_config

    raw = experiment(tmp_path)
    raw["output"] = "run"
    raw["data"] = "synthetic"  # shorthand for {name: synthetic}
    raw["student"]["pinet"], raw["student"]["pi_model"] = "pinet.safetensors", "resnet8"
    cfg = parse_config(raw, base_dir=tmp_path)
    assert isinstance(cfg, ExperimentConfig) and cfg.output == tmp_path / "run"
    assert cfg.student.pinet == str(tmp_path / "pinet.safetensors")
    assert cfg.data.name == "synthetic" and cfg.data.synthetic_windows == 600
    # the top-level seed / device are the defaults of every train section, a section's own value wins
    assert cfg.teachers["signal"].train.seed == 3 and cfg.teachers["signal"].name == "signal"
    raw["device"] = "cpu"
    raw["student"]["train"]["seed"] = 9
    cfg = parse_config(raw, base_dir=tmp_path, overrides=["teachers.signal.train.epochs=4"])
    assert cfg.student.train.seed == 9 and cfg.student.train.device == "cpu"
    assert cfg.teachers["signal"].train.epochs == 4 and cfg.student.teachers[0].checkpoint == "best"
    raw["teachers"]["signal"]["name"] = "other"
    with pytest.raises(ConfigError, match=r"^teachers.signal.name is 'other': a teacher's name is its key"):
        parse_config(raw)


def test_schema_choices_match_the_code_that_uses_them():
    from topokd.distill import config as dconfig
    from topokd.distill.data import DATASETS
    from topokd.distill.trainer import INPUTS

    assert dconfig.DATA_SETS == DATASETS
    assert get_args(inspect.get_annotations(dconfig.TeacherSpec, eval_str=True)["inputs"]) == INPUTS


# --------------------------------------------------------------------------- the compression config
COMPRESS = {"data": "synthetic", "steps": [{"prune": {"amount": 0.5}}, {"finetune": None},
                                           {"quantize": {"method": "static"}}]}


@pytest.mark.parametrize("overrides, message", [
    (["steps[0].prune.amount=half"], "steps[0].prune.amount must be a number, got 'half'"),
    (["steps[0].prune.amount=1.5"], "steps[0].prune.amount must be in (0, 1) (the fraction to remove), got 1.5"),
    (["steps[0].prune.method=globl"], "steps[0].prune.method must be one of 'unstructured', 'global', "
                                      "'structured', got 'globl' (did you mean 'global'?)"),
    (["steps[1].finetune.epochs=1.5"], "steps[1].finetune.epochs must be an integer, got 1.5"),
    (["steps[1].finetune.lr=0"], "steps[1].finetune.lr must be > 0, got 0.0"),
    (["steps[1].finetune.optimiser=sgd"], "steps[1].finetune: unknown key 'optimiser' (did you mean 'optimizer'?)"),
    (["steps[2].quantize.method=int4"], "steps[2].quantize.method must be one of 'dynamic', 'static', 'qat', "
                                        "got 'int4'"),
    (["steps[2].quantize.reduce_range=1"], "steps[2].quantize.reduce_range must be a boolean (true/false) or null, "
                                           "got 1"),
    (["steps[2]={shrink: {}}"], "steps[2]: unknown key 'shrink'; allowed: finetune, prune, quantize"),
    (["steps[1]={prune: {amount: 0.5}}"], "steps[1]: the model is already pruned by steps[0]; a model is pruned "
                                          "once (use prune.steps for iterative pruning)"),
    (["steps[1]={quantize: {method: dynamic}}"], "steps[2]: nothing can follow the quantize step steps[1] "
                                                 "(the int8 model is final); move it last"),
    (["steps=[]"], "steps is empty"),
    (["eval_split=tset"], "eval_split must be one of 'train', 'val', 'test', got 'tset' (did you mean 'test'?)"),
    (["latency.batch_sizes=[1, 0]"], "latency.batch_sizes must be a non-empty list of integers >= 1, got [1, 0]"),
    (["latency.repeats=many"], "latency.repeats must be an integer, got 'many'"),
    (["data.name=x"], "override data.name: data is 'synthetic', not a mapping"),
    (["data={name: synthetic, pth: x.npz}"], "data: unknown key 'pth' (did you mean 'path'?); allowed: X, X_test, "
                                             "channels_first, groups, groups_test, name, path, pi_params"),
    (["stpes=[]"], "unknown top-level key 'stpes' (did you mean 'steps'?)"),
])
def test_compression_config_errors(overrides, message):
    from topokd.compress.config import parse_config

    with pytest.raises(ConfigError) as info:
        parse_config(COMPRESS, overrides=overrides)
    assert str(info.value).startswith(message)


def test_compression_config_types_and_round_trip(tmp_path):
    from topokd.compress.config import CompressionConfig, FinetuneStep, PruneStep, QuantizeStep, parse_config

    cfg = parse_config({**COMPRESS, "teacher": "t.safetensors", "latency": {"batch_sizes": [1, 8], "threads": 1}},
                       base_dir=tmp_path)
    assert isinstance(cfg, CompressionConfig)
    assert [type(s) for s in cfg.steps] == [PruneStep, FinetuneStep, QuantizeStep]
    assert cfg.steps[0].method == "structured" and cfg.steps[1] == FinetuneStep()
    assert cfg.teacher == tmp_path / "t.safetensors" and cfg.output is None
    assert cfg.latency.batch_sizes == (1, 8) and cfg.latency.repeats == 50
    assert cfg.data.name == "synthetic" and (cfg.eval_split, cfg.calibration_split) == ("test", "train")
    again = parse_config(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ConfigError, match="^the config needs 'steps' "):
        parse_config({"data": "synthetic"})
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_config(["steps"])


def test_compression_defaults_are_the_library_defaults():
    from topokd.compress import kd_finetune
    from topokd.compress.config import DataConfig, FinetuneStep
    from topokd.distill.config import DataSpec
    from topokd.distill.data import DATASETS

    ft = inspect.signature(kd_finetune).parameters
    for name, value in FinetuneStep().train_kwargs().items():
        assert ft[name].default == value, name
    # one data schema for both configs, whose names are the ones load_splits knows
    assert DataConfig is DataSpec
    name = inspect.get_annotations(DataConfig, eval_str=True)["name"]
    assert get_args(name)[1:] == (type(None),) and get_args(get_args(name)[0]) == DATASETS


# --------------------------------------------------------------------------- shipped configs
def test_every_shipped_config_parses():
    from topokd.compress.config import load_config as load_compress
    from topokd.distill.config import load_config as load_experiment

    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 2
    kinds = set()
    for path in paths:
        raw = yaml.safe_load(path.read_text())
        if "steps" in raw:
            cfg = load_compress(path)
            assert cfg.steps and cfg.teacher.is_absolute() and cfg.teacher.name == "best.safetensors"
            kinds.add("compress")
        else:
            cfg = load_experiment(path)
            assert cfg.student is not None and cfg.teachers and cfg.output.parent.name == "runs"
            kinds.add("experiment")
    assert kinds == {"compress", "experiment"}


# --------------------------------------------------------------------------- nothing is created on error
def test_an_invalid_config_fails_before_any_folder_exists(tmp_path, capsys):
    raw = experiment(tmp_path)
    raw["student"]["train"]["epochs"] = "three"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    for command in ("run", "train-teacher", "distill"):
        assert main([command, str(path), "--quiet"]) == 1
        err = capsys.readouterr().err
        assert err == "topokd: error: student.train.epochs must be an integer, got 'three'\n"
        assert not (tmp_path / "run").exists()
    # a good file with a bad override: same check, same message style
    raw["student"]["train"]["epochs"] = 1
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--quiet", "--set", "teachers.signal.train.lr=fast"]) == 1
    assert capsys.readouterr().err == "topokd: error: teachers.signal.train.lr must be a number, got 'fast'\n"
    assert not (tmp_path / "run").exists()


def test_an_invalid_compression_config_fails_before_any_folder_exists(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**COMPRESS, "steps": [{"prune": {"amount": "half"}}]}))
    out = tmp_path / "out"
    assert main(["compress", str(tmp_path / "missing.safetensors"), str(cfg), "-o", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err == "topokd: error: steps[0].prune.amount must be a number, got 'half'\n"
    cfg.write_text(yaml.safe_dump(COMPRESS))
    assert main(["compress", str(tmp_path / "missing.safetensors"), str(cfg), "-o", str(out), "--quiet",
                 "--set", "latency.warmup=-1"]) == 1
    assert capsys.readouterr().err == "topokd: error: latency.warmup must be >= 0, got -1\n"
    assert main(["compress", str(tmp_path / "missing.safetensors"), str(cfg), "-o", str(out), "--quiet"]) == 1
    assert "missing.safetensors does not exist" in capsys.readouterr().err
    assert not out.exists()
