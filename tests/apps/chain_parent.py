"""Parent script: runs chain_child.py (a CLI) with subprocess.run, passing the URL on."""

import subprocess
import sys
from pathlib import Path

subprocess.run([sys.executable, str(Path(__file__).with_name("chain_child.py")), sys.argv[1]],
               check=True)
print("parent done", flush=True)
