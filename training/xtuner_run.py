"""Runs one of xtuner's tool scripts in this interpreter: `python -m training.xtuner_run MODULE ARGS...`.

The toolkit starts xtuner's scripts through this module instead of the `xtuner` command because
`xtuner train|convert ...` starts a plain `python` found on PATH and always exits 0, even when the
script failed; here the script's own exit status is the process's.

On a machine without a GPU it first gives `torch.cpu` the `is_bf16_supported()` that xtuner 0.2.0
asks the device module for while it builds every model (SupervisedFinetune._prepare_for_flash_attn
in xtuner/model/sft.py); torch has it for CUDA only, so as shipped xtuner stops on CPU with
"AttributeError: module 'torch.cpu' has no attribute 'is_bf16_supported'". The answer given is
False, which is what xtuner assumes off a GPU (float16, not bfloat16, for flash attention, which is
not used on CPU). Nothing else is changed: the training loop, conversion and merge are xtuner's own.
"""

from __future__ import annotations

import runpy
import sys

XTUNER_TOOLS = {
    "train": "xtuner.tools.train",
    "pth_to_hf": "xtuner.tools.model_converters.pth_to_hf",
    "merge": "xtuner.tools.model_converters.merge",
}


def cpu_bf16_answer() -> bool:
    """Give torch.cpu the is_bf16_supported() xtuner calls; True when it had to be added."""
    import torch

    if torch.cuda.is_available() or hasattr(torch.cpu, "is_bf16_supported"):
        return False
    torch.cpu.is_bf16_supported = lambda including_emulation=True: False  # type: ignore[attr-defined]
    return True


def main(argv: list[str]) -> None:
    """Run xtuner's `argv[0]` script (a name from XTUNER_TOOLS) with the remaining arguments."""
    if not argv or argv[0] not in XTUNER_TOOLS:
        sys.exit(f"usage: python -m training.xtuner_run {{{'|'.join(XTUNER_TOOLS)}}} ARGS...")
    module = XTUNER_TOOLS[argv[0]]
    cpu_bf16_answer()
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
