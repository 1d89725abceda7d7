"""What every kpng process does the same way: logging, signals, arguments, metrics, GC
pauses, clocks."""
