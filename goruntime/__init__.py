"""A Go-style runtime: G/M/P scheduler, channels, select, timers, sync, netpoller, net."""
