"""scaling/console.py: the known library noise is dropped by exact message; anything else still shows."""

import io
import logging
import warnings

from scaling import console


def test_known_warnings_are_dropped_and_others_kept():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        console.ignore_known_warnings()
        # the exact texts torch 2.6+ emits from c10d_logger.py for DeepSpeed's ZeRO-3 collectives
        for name, new in (("reduce_scatter_tensor", "reduce_scatter_single"),
                          ("all_gather_into_tensor", "all_gather_single")):
            warnings.warn(f"`torch.distributed.{name}` is deprecated. Please use `torch.distributed.{new}` instead.",
                          FutureWarning, stacklevel=1)
        warnings.warn("`torch.distributed.reduce_scatter_tensor` is deprecated.", UserWarning, stacklevel=1)
        warnings.warn("`torch.distributed.something_else` is deprecated.", FutureWarning, stacklevel=1)
    assert [(w.category, str(w.message).split("`")[1]) for w in seen] == [
        (UserWarning, "torch.distributed.reduce_scatter_tensor"),
        (FutureWarning, "torch.distributed.something_else")]


def test_line_filter_drops_only_the_listed_lines():
    out = io.StringIO()
    stream = console.LineFilter(out)
    stream.write("DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built successfully\nkeep ")
    stream.write("me\nProcessing zero checkpoint '/r/checkpoints/step_000000002'\n")
    stream.write("Reconstructed Trainable fp32 state dict with 84 params 232432 elements\n")
    stream.write("Processing zero checkpoint, then something new\npartial")
    stream.flush()
    assert out.getvalue() == "keep me\nProcessing zero checkpoint, then something new\npartial"


def test_log_filter_drops_the_cpu_notice_only():
    records = []
    logger = logging.getLogger("test_console.DeepSpeed")
    logger.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})())
    logger.addFilter(console._DropMessages([console.KNOWN_LOG_LINES[0][1]]))
    logger.warning("Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.")
    logger.warning("Setting accelerator to cuda")
    assert records == ["Setting accelerator to cuda"]
