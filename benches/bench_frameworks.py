"""Client CPU per token of the frameworks people stream SageMaker endpoints through.

Side by side in one run, against ``sagestream serve --token-delay 0.005`` in a process of its
own (``time.process_time()`` here is the client's CPU alone, every thread of this process
counted: the worker threads stock code hops to included), one stream of ``--tokens`` tokens
per row per round, rows alternating, medians of the rounds:

- LangChain chat model, sync ``stream()`` and async ``astream()``: langchain-aws's
  ``ChatSagemakerEndpoint`` with the content handler its users write for an OpenAI-compatible
  chat endpoint (``data:`` lines of ``chat.completion.chunk``), the same after
  ``sagestream.patch_botocore()``, and ``sagestream.integrations.langchain``'s (its ready
  handler; and with the stock handler, to show what the handler itself costs);
- LangChain LLM, sync ``stream()``: langchain-aws's ``SagemakerEndpoint`` with a TGI handler,
  patched, and the integration's (``TGIContentHandler``);
- Strands: the provider's ``stream()`` consumed directly (Strands' ``SageMakerAIModel``, patched,
  and the integration's), and a whole ``Agent.stream_async`` turn, where the agent's own
  per-token work is counted too.

    python benches/bench_frameworks.py [--rounds 7] [--tokens 200] [--streams 1] [--delay 0.005]
                                       [--only langchain,strands]

``--streams N`` runs N answers at once per row (N threads for the sync rows, N tasks for the
async ones), as a server handling several conversations does; ``--delay 0`` streams back to
back, which leaves the frameworks' own per-token work and no waiting.

Build the extension in release mode first (``maturin develop -r``). Every row must produce the
same text (checked), so each measures the same answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ACCESS_KEY, SECRET_KEY, REGION = "AKIDBENCH", "bench-secret", "us-east-1"
PROMPT = "Tell me about rivers"


def start_server(delay: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sagestream",
            "serve",
            "--port",
            "0",
            "--region",
            REGION,
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
            "--token-delay",
            str(delay),
            "--endpoint",
            "chat=demo",
            "--endpoint",
            "tgi=demo",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on " in line:
            return proc, line.split("listening on ", 1)[1].split()[0]
    proc.kill()
    raise SystemExit("sagestream serve did not start")


def boto3_session() -> Any:
    import boto3

    return boto3.Session(aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION)


# --- the stock handlers langchain-aws users write --------------------------------------------


def stock_handlers() -> tuple[Any, Any]:
    from langchain_aws.chat_models.sagemaker_endpoint import ChatModelContentHandler
    from langchain_aws.llms.sagemaker_endpoint import LLMContentHandler
    from langchain_core.messages import AIMessage, AIMessageChunk

    class ChatHandler(ChatModelContentHandler):
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: Any, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"messages": prompt, **model_kwargs}).encode()

        def transform_output(self, output: Any) -> Any:
            if hasattr(output, "read"):
                doc = json.loads(output.read())
                return AIMessage(content=doc["choices"][0]["message"]["content"])
            line = output.decode()
            if not line.startswith("data:"):
                return AIMessageChunk(content="")
            data = line[5:].strip()
            if data == "[DONE]":
                return AIMessageChunk(content="")
            choices = json.loads(data).get("choices") or [{}]
            return AIMessageChunk(content=(choices[0].get("delta") or {}).get("content") or "")

    class TGIHandler(LLMContentHandler):
        content_type = "application/json"
        accepts = "application/json"

        def transform_input(self, prompt: str, model_kwargs: dict[str, Any]) -> bytes:
            return json.dumps({"inputs": prompt, "parameters": model_kwargs, "stream": True}).encode()

        def transform_output(self, output: Any) -> str:
            if hasattr(output, "read"):
                return str(json.loads(output.read())[0]["generated_text"])
            line = output.decode()
            return str(json.loads(line[5:])["token"]["text"]) if line.startswith("data:") else ""

    return ChatHandler(), TGIHandler()


# --- rows: each returns (text, tokens) of one answer ---------------------------------------------


class Bench:
    def __init__(self, url: str, tokens: int, streams: int) -> None:
        self.url = url
        self.tokens = tokens
        self.streams = streams
        self.loop = asyncio.new_event_loop()
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = url  # Strands' provider takes no URL
        self.rows: dict[str, tuple[Callable[[], tuple[str, int]], bool]] = {}

    def threads(self, one: Callable[[], tuple[str, int]]) -> Callable[[], tuple[str, int]]:
        """``streams`` answers at once, a thread each (one: on this thread)."""
        if self.streams == 1:
            return one

        def run() -> tuple[str, int]:
            with ThreadPoolExecutor(self.streams) as pool:
                answers = list(pool.map(lambda _: one(), range(self.streams)))
            return answers[0][0], sum(tokens for _, tokens in answers)

        return run

    def tasks(self, one: Callable[[], Awaitable[tuple[str, int]]]) -> Callable[[], tuple[str, int]]:
        """``streams`` answers at once, a task each, on the bench's event loop."""

        async def run() -> tuple[str, int]:
            answers = await asyncio.gather(*(one() for _ in range(self.streams)))
            return answers[0][0], sum(tokens for _, tokens in answers)

        return lambda: self.loop.run_until_complete(run())

    def add(self, name: str, run: Callable[[], tuple[str, int]], patched: bool = False) -> None:
        self.rows[name] = (run, patched)

    def langchain(self) -> None:
        from langchain_aws import SagemakerEndpoint as StockLLM
        from langchain_aws.chat_models.sagemaker_endpoint import ChatSagemakerEndpoint as StockChat
        from sagestream.integrations.langchain import ChatSagemakerEndpoint, SagemakerEndpoint

        chat_handler, tgi_handler = stock_handlers()
        stock_client = boto3_session().client("sagemaker-runtime", endpoint_url=self.url)
        keys = {
            "region_name": REGION,
            "endpoint_url": self.url,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        chat_kwargs: dict[str, Any] = {}
        attributes = {"CustomAttributes": f"tokens={self.tokens}"}  # the demo's answer length
        stock_chat = StockChat(
            endpoint_name="chat",
            client=stock_client,
            content_handler=chat_handler,
            model_kwargs={**chat_kwargs, "stream": True},
            endpoint_kwargs=attributes,
        )
        ours_chat = ChatSagemakerEndpoint(
            endpoint_name="chat", model_kwargs=chat_kwargs, endpoint_kwargs=attributes, **keys
        )
        ours_chat_plain = ChatSagemakerEndpoint(
            endpoint_name="chat",
            content_handler=chat_handler,
            model_kwargs={**chat_kwargs, "stream": True},
            endpoint_kwargs=attributes,
            **keys,
        )
        tgi_kwargs: dict[str, Any] = {}
        stock_llm = StockLLM(
            endpoint_name="tgi",
            client=stock_client,
            content_handler=tgi_handler,
            model_kwargs=tgi_kwargs,
            endpoint_kwargs=attributes,
        )
        ours_llm = SagemakerEndpoint(
            endpoint_name="tgi", model_kwargs=tgi_kwargs, endpoint_kwargs=attributes, **keys
        )

        def sync(model: Any) -> Callable[[], tuple[str, int]]:
            def one() -> tuple[str, int]:
                texts = [c if isinstance(c, str) else c.content for c in model.stream(PROMPT)]
                return "".join(texts), sum(1 for t in texts if t)

            return self.threads(one)

        def asynchronous(model: Any) -> Callable[[], tuple[str, int]]:
            async def one() -> tuple[str, int]:
                texts = [c.content async for c in model.astream(PROMPT)]
                return "".join(texts), sum(1 for t in texts if t)

            return self.tasks(one)

        self.add("LangChain chat, sync: langchain-aws", sync(stock_chat))
        self.add("LangChain chat, sync: langchain-aws + patch_botocore", sync(stock_chat), patched=True)
        self.add("LangChain chat, sync: sagestream, stock handler", sync(ours_chat_plain))
        self.add("LangChain chat, sync: sagestream", sync(ours_chat))
        self.add("LangChain chat, async: langchain-aws", asynchronous(stock_chat))
        self.add(
            "LangChain chat, async: langchain-aws + patch_botocore", asynchronous(stock_chat), patched=True
        )
        self.add("LangChain chat, async: sagestream", asynchronous(ours_chat))
        self.add("LangChain LLM (TGI), sync: langchain-aws", sync(stock_llm))
        self.add("LangChain LLM (TGI), sync: langchain-aws + patch_botocore", sync(stock_llm), patched=True)
        self.add("LangChain LLM (TGI), sync: sagestream", sync(ours_llm))

    def strands(self) -> None:
        from sagestream.integrations.strands import SageMakerAIModel
        from strands import Agent
        from strands.models.sagemaker import SageMakerAIModel as StockModel

        endpoint = {
            "endpoint_name": "chat",
            "region_name": REGION,
            "additional_args": {"CustomAttributes": f"tokens={self.tokens}"},  # the demo's answer length
        }
        payload: dict[str, Any] = {}
        stock = StockModel(endpoint_config=endpoint, payload_config=payload, boto_session=boto3_session())  # type: ignore[arg-type]
        ours = SageMakerAIModel(
            endpoint_config=endpoint,  # type: ignore[arg-type]
            payload_config=payload,  # type: ignore[arg-type]
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        messages = [{"role": "user", "content": [{"text": PROMPT}]}]

        def provider(model: Any) -> Callable[[], tuple[str, int]]:
            async def one() -> tuple[str, int]:
                texts = []
                async for event in model.stream(messages):
                    delta = event.get("contentBlockDelta")
                    if delta is not None and "text" in delta["delta"]:
                        texts.append(delta["delta"]["text"])
                return "".join(texts), len(texts)

            return self.tasks(one)

        def agent(model: Any) -> Callable[[], tuple[str, int]]:
            async def one() -> tuple[str, int]:
                texts = []
                async for event in Agent(model=model, callback_handler=None).stream_async(PROMPT):
                    if "data" in event:
                        texts.append(event["data"])
                return "".join(texts), len(texts)

            return self.tasks(one)

        self.add("Strands provider: strands SageMakerAIModel", provider(stock))
        self.add("Strands provider: strands + patch_botocore", provider(stock), patched=True)
        self.add("Strands provider: sagestream", provider(ours))
        self.add("Strands Agent turn: strands SageMakerAIModel", agent(stock))
        self.add("Strands Agent turn: strands + patch_botocore", agent(stock), patched=True)
        self.add("Strands Agent turn: sagestream", agent(ours))

    def run(self, rounds: int) -> dict[str, list[float]]:
        import sagestream

        per_token: dict[str, list[float]] = {name: [] for name in self.rows}
        texts: dict[str, str] = {}
        for round_ in range(rounds + 1):  # round 0 warms up (clients, imports, connections)
            for name, (run, patched) in self.rows.items():
                if patched:
                    sagestream.patch_botocore()
                try:
                    start = time.process_time()
                    text, tokens = run()
                    cpu = time.process_time() - start
                finally:
                    if patched:
                        sagestream.unpatch_botocore()
                family = name.split(":")[0]
                expected = texts.setdefault(family, text)
                if text != expected or tokens < self.tokens * self.streams * 0.9:
                    raise SystemExit(f"{name}: a different answer ({tokens} tokens): {text[:80]!r}")
                if round_:
                    per_token[name].append(cpu / tokens * 1e6)
            if round_:
                print(f"round {round_}/{rounds} done", file=sys.stderr)
        return per_token


def report(per_token: dict[str, list[float]], tokens: int, streams: int) -> None:
    print(
        f"\n{streams} answer(s) at once, {tokens} tokens each; client CPU µs per token,"
        " median (min-max) of the rounds\n"
    )
    print("| framework, path | client | CPU µs / token | vs stock |")
    print("|---|---|---:|---:|")
    baseline: dict[str, float] = {}
    for name, values in per_token.items():
        family, client = name.split(": ", 1)
        median = statistics.median(values)
        base = baseline.setdefault(family, median)
        spread = f"{min(values):.1f}-{max(values):.1f}"
        print(f"| {family} | {client} | {median:.1f} ({spread}) | {base / median:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.005, help="the server's seconds between tokens")
    parser.add_argument("--streams", type=int, default=1, help="answers at once per row (threads / tasks)")
    parser.add_argument("--only", default="langchain,strands")
    args = parser.parse_args()
    proc, url = start_server(args.delay)
    try:
        bench = Bench(url, args.tokens, args.streams)
        only = set(args.only.split(","))
        if "langchain" in only:
            bench.langchain()
        if "strands" in only:
            bench.strands()
        report(bench.run(args.rounds), args.tokens, args.streams)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
