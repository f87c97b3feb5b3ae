"""A Go-style runtime: G/M/P scheduler, channels, select, timers, sync, netpoller, net.

Gs are ``async def`` coroutines run by ``run(main(), procs=N)``; see DESIGN.md for the API.
"""

from . import net as net  # rt.net
from . import signal as signal  # rt.signal
from .chan import Chan, close
from .errors import Deadlock, Fatal, Panic
from .main import gomaxprocs, num_goroutine, run
from .proc import go, gosched, syscall
from .select import recv, select, send
from .sleep import Ticker, Timer, after, after_func, sleep
from .sync import Mutex, Once, RWMutex, WaitGroup
from .trace import stats

__all__ = [
    "Chan", "Deadlock", "Fatal", "Mutex", "Once", "Panic", "RWMutex", "Ticker", "Timer",
    "WaitGroup", "after", "after_func", "close", "go", "gomaxprocs", "gosched",
    "num_goroutine", "recv", "run", "select", "send", "sleep", "stats", "syscall",
]
