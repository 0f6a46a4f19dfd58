from celery import shared_task


@shared_task
def add(x: int, y: int) -> int:
    return x + y


@shared_task
def fail() -> None:
    raise RuntimeError("the stand-in task fails on purpose")
