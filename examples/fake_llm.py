"""A stand-in Ollama for the demo: canned, friendly sentences, streamed word by word.

Speaks Ollama's native API on loopback (`GET /api/version`, `GET /api/tags`, `POST /api/chat`,
streamed as NDJSON or not) with the standard library only: the demo needs no LLM and no test code.
The answer follows the system message the service sends: its language ("reply in Spanish") and
its trigger hint (a greeting, a farewell, a question, an event), addressed to the viewer by name.

    python -m examples.fake_llm --port 11500     # then OLLAMA_HOST=127.0.0.1 OLLAMA_PORT=11500
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from examples.loopback import LoopbackServer

MODEL = "llama3.2:latest"

# language → kind → sentence; {name} is the viewer.
CANNED: dict[str, dict[str, str]] = {
    "English": {"greeting": "Hey {name}, welcome to the stream! Grab a seat and enjoy.",
                "farewell": "Thanks for hanging out, {name}! See you next time.",
                "question": "Good question, {name}! We are playing through the story tonight.",
                "event": "Thank you so much, {name}! You are awesome."},
    "Spanish": {"greeting": "¡Hola {name}, bienvenido al stream! Ponte cómodo.",
                "farewell": "¡Gracias por venir, {name}! Hasta la próxima.",
                "question": "¡Buena pregunta, {name}! Hoy jugamos la historia completa.",
                "event": "¡Muchísimas gracias, {name}! Eres genial."},
    "Portuguese": {"greeting": "Olá {name}, bem-vindo à live! Fica à vontade.",
                   "farewell": "Valeu por ter vindo, {name}! Até a próxima.",
                   "question": "Boa pergunta, {name}! Hoje vamos jogar a história toda.",
                   "event": "Muito obrigado, {name}! Você é demais."},
    "French": {"greeting": "Salut {name}, bienvenue sur le stream ! Installe-toi.",
               "farewell": "Merci d'être passé, {name} ! À la prochaine.",
               "question": "Bonne question, {name} ! Ce soir on joue toute l'histoire.",
               "event": "Merci beaucoup, {name} ! Tu es génial."},
    "German": {"greeting": "Hallo {name}, willkommen im Stream! Mach es dir gemütlich.",
               "farewell": "Danke fürs Vorbeischauen, {name}! Bis zum nächsten Mal.",
               "question": "Gute Frage, {name}! Heute spielen wir die ganze Geschichte.",
               "event": "Vielen Dank, {name}! Du bist großartig."},
    "Italian": {"greeting": "Ciao {name}, benvenuto nella live! Mettiti comodo.",
                "farewell": "Grazie di essere passato, {name}! Alla prossima.",
                "question": "Bella domanda, {name}! Stasera giochiamo tutta la storia.",
                "event": "Grazie mille, {name}! Sei fantastico."},
    "Russian": {"greeting": "Привет, {name}! Добро пожаловать на стрим.",
                "farewell": "Спасибо, что заглянул, {name}! До встречи.",
                "question": "Хороший вопрос, {name}! Сегодня проходим всю историю.",
                "event": "Огромное спасибо, {name}! Ты лучший."},
    "Japanese": {"greeting": "{name} さん、こんにちは！ 配信へようこそ。",
                 "farewell": "{name} さん、来てくれてありがとう！ またね。",
                 "question": "{name} さん、いい質問！ 今日はストーリーを最後まで進めます。",
                 "event": "{name} さん、本当にありがとう！ 最高です。"},
    "Korean": {"greeting": "{name} 님, 안녕하세요! 방송에 오신 걸 환영해요.",
               "farewell": "{name} 님, 와 주셔서 고마워요! 다음에 또 만나요.",
               "question": "{name} 님, 좋은 질문이에요! 오늘은 스토리를 끝까지 해요.",
               "event": "{name} 님, 정말 고마워요! 최고예요."},
    "Chinese": {"greeting": "{name}，你好！ 欢迎来到直播间。",
                "farewell": "{name}，谢谢你来看！ 下次见。",
                "question": "{name}，好问题！ 今天我们把剧情打通。",
                "event": "{name}，太感谢了！ 你真棒。"},
}
KINDS = (("greet", "greeting"), ("wish them well", "farewell"), ("thank", "event"))


def answer(messages: list[dict[str, Any]]) -> str:
    """The canned sentence for the system message's language and trigger, to the viewer's name."""
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    found = re.search(r"reply in (\w+)\.", system)
    language = found.group(1) if found and found.group(1) in CANNED else "English"
    kind = next((k for hint, k in KINDS if hint in system), "question")
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    event = re.match(r"\[\w+ event from (.+?)\]", last)
    name = event.group(1) if event else (last.split(":", 1)[0].strip() if ":" in last else "friend")
    return CANNED[language][kind].format(name=name or "friend")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the service's one pooled client reuses connections
    server: "FakeLLM._Server"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints its own table
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/version":
            return self._json(200, {"version": "0.6.3"})
        if self.path == "/api/tags":
            return self._json(200, {"models": [{"name": MODEL, "model": MODEL, "modified_at": _now(),
                                                "size": 2019393189, "digest": "demo"}]})
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._json(400, {"error": "invalid JSON"})
        if self.path != "/api/chat":
            return self._json(404, {"error": "not found"})
        if not isinstance(body, dict) or not body.get("model"):
            return self._json(400, {"error": "model is required"})
        self.server.owner.count_call()
        text = answer(body.get("messages") or [])
        model = body["model"]
        if not body.get("stream", True):
            return self._json(200, self._line(model, text, done=True))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in re.findall(r"\s*\S+", text):
            self._chunk(self._line(model, piece, done=False))
            time.sleep(self.server.owner.word_delay)  # a model's pace, one word at a time
        self._chunk(self._line(model, "", done=True))
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, line: dict[str, Any]) -> None:
        data = json.dumps(line, ensure_ascii=False).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    @staticmethod
    def _line(model: str, content: str, done: bool) -> dict[str, Any]:
        line: dict[str, Any] = {"model": model, "created_at": _now(),
                                "message": {"role": "assistant", "content": content}, "done": done}
        if done:
            line.update(done_reason="stop", prompt_eval_count=42, eval_count=len(content.split()) or 12)
        return line


class FakeLLM(LoopbackServer):
    """The server on its own thread: `start()`, `url`, `calls`, `stop()`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, word_delay: float = 0.02) -> None:
        super().__init__(_Handler, "fake-llm", host, port)
        self.word_delay = word_delay
        self._lock = threading.Lock()
        self.calls = 0

    def count_call(self) -> None:
        with self._lock:
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11500)
    args = parser.parse_args()
    llm = FakeLLM(args.host, args.port).start()
    print(f"fake LLM (Ollama API) on {llm.url}; Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        llm.stop()


if __name__ == "__main__":
    main()
