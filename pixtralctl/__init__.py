"""pixtralctl: the tools around a pixtral-deploy deployment (wait, smoke, bench, render)."""
