#!/usr/bin/python3
"""n siblings of one prompt sharing its KV blocks, against the same n requests sent apart.

Starts one `adak serve` (default: ../shared/models/stories-mixtral when present, else the project's model) and,
per round, alternating the order, runs two arms that each generate n x MAX_TOKENS tokens (sampling, ignore_eos)
from one fresh PROMPT_TOKENS-token prompt (a new prompt per arm and round, so nothing comes from an earlier one):

  siblings  one /v1/completions request with "n": N; the later siblings start once the first has computed the
            prompt and take its full KV blocks from the prefix cache (usage.adak.shared_prompt_tokens);
  separate  N concurrent requests with the same prompt and n = 1 (each is scheduled on its own; they share
            blocks only when chunked prefill happens to publish them before a later one is admitted).

Prints each round's wall time (client side, from the first byte sent to the last response), the prompt tokens
the requests took from the cache, and the ratio of the medians.

    /usr/bin/python3 bench/siblings.py [--n N] [--prompt-tokens P] [--max-tokens T] [--rounds R] [--model DIR]
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data}")
    return data


def main():
    ap = argparse.ArgumentParser()
    shared = os.path.join(ROOT, "..", "shared", "models", "stories-mixtral")
    ap.add_argument("--model", default=shared if os.path.isdir(shared) else os.path.join(ROOT, "models", "stories-moe-small"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "adak"))
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()

    port = free_port()
    server = subprocess.Popen([args.bin, "serve", "--model", args.model, "--grpc-port", "-1", "--http-port", str(port),
                               "--max-running-requests", str(args.n)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        seed = [0]

        def prompt():
            seed[0] += 1
            return [300 + (seed[0] * 7919 + i * 31) % 3500 for i in range(args.prompt_tokens)]

        def body(ids, n):
            return {"prompt": ids, "max_tokens": args.max_tokens, "n": n, "temperature": 1.0, "ignore_eos": True}

        def siblings():
            start = time.perf_counter()
            r = post(port, body(prompt(), args.n))
            elapsed = time.perf_counter() - start
            assert len(r["choices"]) == args.n
            return elapsed, r["usage"]["prompt_tokens_details"]["cached_tokens"] + r["usage"]["adak"]["shared_prompt_tokens"]

        def separate():
            ids = prompt()
            results = [None] * args.n
            def one(i):
                results[i] = post(port, body(ids, 1))
            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.n)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            return elapsed, sum(r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in results)

        post(port, body(prompt(), 1))  # warm up
        print(f"model {os.path.basename(os.path.normpath(args.model))}, n {args.n}, prompt {args.prompt_tokens} tokens, "
              f"{args.max_tokens} tokens each, {os.cpu_count()} cores")
        times = {"siblings": [], "separate": []}
        for r in range(args.rounds):
            order = [("siblings", siblings), ("separate", separate)]
            if r % 2:
                order.reverse()
            line = []
            for name, arm in order:
                elapsed, cached = arm()
                times[name].append(elapsed)
                line.append(f"{name} {elapsed:.3f} s ({cached} prompt tokens from the cache)")
            print(f"round {r + 1}: " + ", ".join(line))
        s, p = statistics.median(times["siblings"]), statistics.median(times["separate"])
        print(f"median: siblings {s:.3f} s (min {min(times['siblings']):.3f}, max {max(times['siblings']):.3f}), "
              f"separate {p:.3f} s (min {min(times['separate']):.3f}, max {max(times['separate']):.3f}); "
              f"separate / siblings = {p / s:.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
