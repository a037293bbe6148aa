"""The `train:` group, checked before anything is written or launched (torch-free: `ladder sweep` checks it too)."""

from __future__ import annotations

from ladder.errors import require

DTYPES = ("auto", "bf16", "fp32")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")  # torch.compile's own


def check_train_options(tcfg) -> None:
    """One line naming the field and the fix for each bad value; nothing is touched before this passes."""
    for key in ("log_every", "checkpoint_every", "keep_checkpoints"):
        value = tcfg.get(key)
        require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"train.{key}={value!r}: a whole number of at least 1")
    check_eval_points(tcfg.get("eval_points"))
    require(str(tcfg.get("compile")) == "auto" or isinstance(tcfg.get("compile"), bool),
            f"train.compile={tcfg.get('compile')!r}: use auto (on CUDA), true or false")
    require(str(tcfg.get("compile_backend")) in COMPILE_BACKENDS,
            f"train.compile_backend={tcfg.get('compile_backend')!r}: use one of {', '.join(COMPILE_BACKENDS)}")
    threads = tcfg.get("threads")
    require(str(threads) == "auto" or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
            f"train.threads={threads!r}: auto, or a whole number of at least 1")
    require(str(tcfg.get("dtype")) in DTYPES, f"train.dtype={tcfg.get('dtype')!r}: use one of {', '.join(DTYPES)} "
                                              f"(bf16 autocast on CUDA; CPUs train in fp32)")
    require(str(tcfg.get("device")) in ("auto", "cpu", "cuda"), f"train.device={tcfg.get('device')!r}: use auto, "
                                                                 f"cpu or cuda")


def check_eval_points(points) -> None:
    require(str(points) == "auto" or (isinstance(points, int) and not isinstance(points, bool) and points >= 0),
            f"train.eval_points={points!r}: auto, or a whole number, 0 or more")
