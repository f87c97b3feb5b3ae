"""Leaf helpers every layer may import (servers, goruntime, loadgen, results, bench): they
import none of those, only the standard library."""
