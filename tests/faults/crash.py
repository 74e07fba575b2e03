"""`python -m vlmscale.train OVERRIDES` with one fault: the process sends itself a signal at a chosen point.

    python tests/faults/crash.py WHERE SIGNAL [overrides ...]

WHERE: `step:N` (before optimiser step N+1 runs), `checkpoint:N` (while the checkpoint of step N is being
written: with SIGKILL the file is half written when the process dies), `eval` (as generation starts),
`result` (the result.json temp file written, not yet moved into place). SIGNAL: KILL or TERM.
The hooks wrap the real functions, so what runs is the real code path up to the fault.
"""

from __future__ import annotations

import io
import os
import signal
import sys


def _signal_self(sig: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), sig)


def arm(where: str, sig: int) -> None:
    kind, _, arg = where.partition(":")
    if kind == "step":
        from vlmscale.lit import VLMLightningModule

        training_step = VLMLightningModule.training_step

        def faulty_training_step(self, batch, batch_idx):
            if self.trainer.global_step == int(arg):
                _signal_self(sig)
            return training_step(self, batch, batch_idx)

        VLMLightningModule.training_step = faulty_training_step
    elif kind == "checkpoint":
        import torch

        save = torch.save

        def faulty_save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("global_step") == int(arg) and hasattr(f, "write"):
                if sig == signal.SIGKILL:  # die with half the bytes written
                    buffer = io.BytesIO()
                    save(obj, buffer, *args, **kwargs)
                    f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    f.flush()
                _signal_self(sig)
            return save(obj, f, *args, **kwargs)

        torch.save = faulty_save
    elif kind == "eval":
        import vlmscale.eval.runner as runner

        generate_answers = runner.generate_answers

        def faulty_generate_answers(*args, **kwargs):
            _signal_self(sig)
            return generate_answers(*args, **kwargs)

        runner.generate_answers = faulty_generate_answers
    elif kind == "result":
        replace = os.replace

        def faulty_replace(src, dst, *args, **kwargs):
            if os.path.basename(dst) == "result.json":
                _signal_self(sig)
            return replace(src, dst, *args, **kwargs)

        os.replace = faulty_replace
    else:
        raise SystemExit(f"unknown fault point {where!r}: use step:N, checkpoint:N, eval or result")


if __name__ == "__main__":
    where, name, *overrides = sys.argv[1:]
    arm(where, getattr(signal, f"SIG{name}"))
    sys.argv = ["vlmscale.train", *overrides]
    from vlmscale.train import main

    main()
