#!/usr/bin/python3
"""Train the VAE example with tapegrad and the same model with PyTorch, one after the other, and
print the per-epoch training time of both, their ratio, both test losses and both peak RSS.

    /usr/bin/python3 bench/vae_vs_pytorch.py --epochs 3
    /usr/bin/python3 bench/vae_vs_pytorch.py --epochs 10 --threads 2
    python3 bench/vae_vs_pytorch.py --device cuda --epochs 5     # both on the GPU


Run it with /usr/bin/python3 (Debian's python3-torch); PyTorch is only ever used here, never by
the library. The PyTorch side is PyTorch's examples/vae model with the same settings as the C++
example: 784-400-(20, 20) / 20-400-784, ReLU, nn.Linear's default init, loss = BCE-with-logits
(sum) + Gaussian KL (sum), Adam lr 1e-3, batch 128, reshuffled every epoch, z sampled in the test
pass too. To give PyTorch its fastest input path, the whole dataset is one in-memory tensor and
batches are index_select'ed (no DataLoader, no worker processes).

With --device cuda both sides train on the GPU with the dataset resident there: tapegrad's
example with --device cuda, PyTorch with the model, the data and the shuffling on the GPU and the
epoch's loss summed on the device (no .item() per step, which would wait for the GPU every step),
as tapegrad does. An epoch's time ends with torch.cuda.synchronize().

Each side runs in its own child process; its peak RSS comes from os.wait4() on that child.
"""
import argparse
import gzip
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(command):
    """Runs `command`, echoing its output; returns (stdout text, peak RSS in MB, exit status)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write("    " + line)
        sys.stdout.flush()
        lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return "".join(lines), usage.ru_maxrss / 1024.0, process.returncode


# ---------------------------------------------------------------- the PyTorch side

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not a u8 IDX file"
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def find(directory, name):
    for candidate in (os.path.join(directory, name), os.path.join(directory, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    sys.exit(f"missing {name}(.gz) in {directory}")


def pytorch_worker(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"

    def load(prefix):
        dims, raw = read_idx(find(args.data, prefix + "-images-idx3-ubyte"))
        images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(dims[0], -1)
        return images.float().div(255).to(device)

    train, test = load("train"), load("t10k")

    class VAE(nn.Module):  # PyTorch's examples/vae, decoder returning logits
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 400)
            self.fc21 = nn.Linear(400, args.latent)
            self.fc22 = nn.Linear(400, args.latent)
            self.fc3 = nn.Linear(args.latent, 400)
            self.fc4 = nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    def loss_function(logits, x, mu, logvar):
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    model = VAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    where = torch.cuda.get_device_name(device) if on_gpu else f"{torch.get_num_threads()} thread(s)"
    print(f"PyTorch {torch.__version__}, {where}", flush=True)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(train.shape[0], device=device)
        total = torch.zeros((), dtype=torch.float64, device=device) if on_gpu else 0.0
        for b in range(0, train.shape[0], args.batch):
            x = train.index_select(0, order[b:b + args.batch])
            optimizer.zero_grad()
            logits, mu, logvar = model(x)
            loss = loss_function(logits, x, mu, logvar)
            loss.backward()
            optimizer.step()
            total += loss.detach() if on_gpu else loss.item()
        total = float(total)  # waits for the GPU
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.eval()
        test_total = 0.0
        with torch.no_grad():
            for b in range(0, test.shape[0], args.batch):
                x = test[b:b + args.batch]
                logits, mu, logvar = model(x)
                test_total += loss_function(logits, x, mu, logvar).item()
        if on_gpu:
            torch.cuda.synchronize()
        test_seconds = time.perf_counter() - start
        print(f"epoch {epoch}/{args.epochs}  train loss {total / train.shape[0]:.2f}  "
              f"test loss {test_total / test.shape[0]:.2f}  {train_seconds:.2f} s "
              f"(+ test {test_seconds:.2f} s)", flush=True)


# ---------------------------------------------------------------- both, side by side

EPOCH_LINE = re.compile(r"epoch (\d+)/\d+\s+train loss ([\d.]+)\s+test loss ([\d.]+)\s+([\d.]+) s "
                        r"\(\+ test ([\d.]+) s\)")


def parse(text):
    return [(int(m[1]), float(m[2]), float(m[3]), float(m[4]), float(m[5]))
            for m in EPOCH_LINE.finditer(text)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="BLAS / intra-op threads for both (default: all cores)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--latent", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--tapegrad", default=os.path.join(ROOT, "build", "examples", "vae", "vae"),
                        help="the built example (default: build/examples/vae/vae)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda[:N] for both sides")
    parser.add_argument("--only", choices=["tapegrad", "pytorch"], help="run one side only")
    parser.add_argument("--coretype", help="set OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) for both "
                        "sides; by default both inherit this environment's")
    parser.add_argument("--pytorch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pytorch_worker:
        return pytorch_worker(args)

    if args.coretype:
        os.environ["OPENBLAS_CORETYPE"] = args.coretype
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset: OpenBLAS detects the CPU)')} "
          f"for both sides, {args.threads} thread(s), {args.epochs} epoch(s)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="vae-bench-") as out:
        if args.only != "pytorch":
            print(f"tapegrad: {args.tapegrad}")
            text, rss, code = run_child([args.tapegrad, "--epochs", str(args.epochs), "--batch",
                                         str(args.batch), "--latent", str(args.latent), "--seed",
                                         str(args.seed), "--threads", str(args.threads), "--data",
                                         args.data, "--out", out, "--device", args.device])
            if code != 0:
                sys.exit(f"tapegrad failed with exit status {code}")
            results["tapegrad"] = (parse(text), rss)
    if args.only != "tapegrad":
        print("pytorch:")
        worker = [sys.executable, os.path.abspath(__file__), "--pytorch-worker"] + \
                 [a for a in sys.argv[1:] if a != "--pytorch-worker"]
        text, rss, code = run_child(worker)
        if code != 0:
            sys.exit(f"the PyTorch worker failed with exit status {code}")
        results["pytorch"] = (parse(text), rss)

    print()
    if len(results) == 2:
        tg, pt = results["tapegrad"][0], results["pytorch"][0]
        print(f"{'epoch':>5}  {'tapegrad s':>10}  {'pytorch s':>9}  {'ratio':>6}  "
              f"{'tapegrad test':>13}  {'pytorch test':>12}")
        for a, b in zip(tg, pt):
            print(f"{a[0]:>5}  {a[3]:>10.2f}  {b[3]:>9.2f}  {b[3] / a[3]:>5.1f}x  {a[2]:>13.2f}  "
                  f"{b[2]:>12.2f}")
        mean_tg = sum(r[3] for r in tg) / len(tg)
        mean_pt = sum(r[3] for r in pt) / len(pt)
        print(f"mean training epoch: tapegrad {mean_tg:.2f} s, pytorch {mean_pt:.2f} s "
              f"-> tapegrad is {mean_pt / mean_tg:.1f}x faster")
        print(f"test loss after {len(tg)} epochs: tapegrad {tg[-1][2]:.2f}, pytorch {pt[-1][2]:.2f}")
    for name, (rows, rss) in results.items():
        print(f"peak RSS {name}: {rss:.0f} MB")


if __name__ == "__main__":
    main()
