"""Example: a custom adapter written in Python, scripted for `embedapt retrain`.

    python make_torchscript_adapter.py --dim 384 --out gated.pt
    embedapt retrain DB --adapter torchscript:gated.pt --trust-code

The module maps a [n, dim] float32 tensor to [n, out_dim]; the trainer
optimises every parameter with requires_grad, so start it at (or near) the
identity: training starts from the base embedder and model selection compares
against it. embedapt serves the trained module (code and weights) from the
store; loading it runs its code, hence --trust-code.

Version caveat: embedapt links LibTorch 1.13. Script and save with torch 1.13
if you can; archives written by a newer torch may use operators or a file
format version 1.13 cannot read (the load then fails with a clear error).
"""
import argparse

import torch


class GatedResidual(torch.nn.Module):
    """x + gate * (W x): a residual linear map whose gate starts closed."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim, bias=False)
        self.gate = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gate * self.linear(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.jit.script(GatedResidual(args.dim)).save(args.out)


if __name__ == "__main__":
    main()
