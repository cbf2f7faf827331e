# Reference values for train's AdamW and gradient clipping, computed once
# with PyTorch (Debian python3-torch 1.13.1):
#
#   /usr/bin/python3 adamw_torch.py > adamw_torch.json
#
# The Go tests read the JSON; they do not need Python.
import json
import torch

torch.manual_seed(0)
w1 = torch.randn(5, dtype=torch.float32)
w2 = torch.randn(3, dtype=torch.float32)
p1 = torch.nn.Parameter(w1.clone())
p2 = torch.nn.Parameter(w2.clone())
opt = torch.optim.AdamW(
    [{"params": [p1], "weight_decay": 0.1}, {"params": [p2], "weight_decay": 0.0}],
    lr=1e-2, betas=(0.9, 0.95), eps=1e-6, foreach=False)
steps = []
lrs = [1e-2, 5e-3, 2e-2, 1e-3]
for lr in lrs:
    g1 = torch.randn(5, dtype=torch.float32)
    g2 = torch.randn(3, dtype=torch.float32) * 0.01
    p1.grad, p2.grad = g1.clone(), g2.clone()
    for grp in opt.param_groups:
        grp["lr"] = lr
    opt.step()
    steps.append({"lr": lr, "g1": g1.tolist(), "g2": g2.tolist(),
                  "w1": p1.detach().tolist(), "w2": p2.detach().tolist()})

# clip_grad_norm_ over two tensors.
c1 = torch.nn.Parameter(torch.zeros(4))
c2 = torch.nn.Parameter(torch.zeros(2))
c1.grad = torch.tensor([3.0, -4.0, 1.0, 2.0])
c2.grad = torch.tensor([0.5, -6.0])
norm = torch.nn.utils.clip_grad_norm_([c1, c2], max_norm=2.0)
print(json.dumps({
    "beta1": 0.9, "beta2": 0.95, "eps": 1e-6, "wd1": 0.1, "wd2": 0.0,
    "w1": w1.tolist(), "w2": w2.tolist(), "steps": steps,
    "clip": {"max_norm": 2.0, "g1": [3.0, -4.0, 1.0, 2.0], "g2": [0.5, -6.0],
             "norm": norm.item(), "c1": c1.grad.tolist(), "c2": c2.grad.tolist()},
    "torch": torch.__version__,
}, indent=1))
