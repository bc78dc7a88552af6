"""Session-wide test setup.

Triton's interpreter (the fused kernels' CPU path) must be switched on before triton is first imported, and
deepspeed imports triton as soon as any engine test module is collected; so it is set here, before any
test module is imported. On CPU the engine dispatches to SDPA/reference kernels, so this changes nothing else.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
