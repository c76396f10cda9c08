.PHONY: setup up test test-fast demo lint bench

setup:
	@bash scripts/setup.sh

## One command: set up a fresh machine and run the whole stack (embedded PostgreSQL + Valkey).
up: setup
	.venv/bin/vexa up

## One command: set up a fresh machine and run the whole test suite.
test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider

## Quick loop while developing: everything but the browser/model tests.
test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

## Start the stack, open a simulated meeting, send a bot, print the live transcript.
demo: setup
	.venv/bin/python -m vexa.demo

lint: setup
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

bench: setup
	.venv/bin/python bench/collector.py
	.venv/bin/python bench/gateway.py
	.venv/bin/python bench/ws.py
	.venv/bin/python bench/transcription.py
	.venv/bin/python bench/bots.py
	.venv/bin/python bench/ui.py
