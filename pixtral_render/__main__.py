"""`python -m pixtral_render --stack aws`: one program run under the mock engine, printed as JSON."""

import sys

from .engine import main

sys.exit(main())
