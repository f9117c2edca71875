"""`caseshare demo`: play the story caseshare exists for against the running stack.

The story itself is in `story`; it is imported when the command runs so that other commands
start without loading Kafka and JOSE.
"""

from __future__ import annotations

from typing import Annotated

import typer

from caseshare.cli.ui import console, run, settings


def demo(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each step")] = 30.0,
) -> None:
    """Play the whole story against the running stack: cases, links, a disclosure, live fan-out."""
    from caseshare.cli import story as tale  # Kafka and JOSE load only when this runs

    story = tale.Story(settings(ctx), timeout)
    console.print(f"demo run [bold]{story.tag}[/], group chat {story.group}")
    run(tale.play(story))
    console.print(f"[bold green]demo complete[/]: demo response {story.response_id}")
    console.print(f"see it again with: caseshare fanout show {story.response_id}")
