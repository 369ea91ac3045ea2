"""Runs inside a lab guest (test code, not product code): the overcommit module as Ansible
ships it, killed with SIGKILL at a chosen point of its apply step.

  kill_at.py PAYLOAD STEP N ARGS_JSON

PAYLOAD is an AnsiballZ_overcommit.py that Ansible left on the guest, already exploded
(`python3 PAYLOAD explode` made debug_dir/ next to it). ARGS_JSON is merged into the
module's arguments (debug_dir/args). STEP is one of the apply step's host operations:

  write_live         after the N-th live write to /proc/sys/vm returned
  write_file_atomic  after the N-th file was renamed into place
  remove_file        after the N-th file was removed
  rename             just before the N-th rename of a temporary file into place

The process then kills itself with SIGKILL, like `kill -9` or the OOM killer would: no
exception handler, no rollback, no `finally` runs. Each call is logged to stderr before
any kill (unbuffered, each line starting with "kill_at: "), so the test sees where it died.
Without a kill the module finishes and prints its JSON result as usual.
"""
import importlib
import json
import os
import runpy
import signal
import sys

payload, step, nth, overrides = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
debug_dir = os.path.join(os.path.dirname(os.path.abspath(payload)), "debug_dir")
args_path = os.path.join(debug_dir, "args")
with open(args_path) as handle:
    params = json.load(handle)
params["ANSIBLE_MODULE_ARGS"].update(overrides)
with open(args_path, "w") as handle:
    json.dump(params, handle)

# Import the payload's own host primitives first: the module's `import` then finds these very
# objects in sys.modules, and the wrappers below are what its transaction calls (through the
# module attributes live.write_live, files.write_file_atomic and files.remove_file).
# The collection exists on the guest only inside the exploded payload, whose directory
# is known only now: so that directory goes on sys.path here, as AnsiballZ's own
# `execute` would put it.
sys.path.insert(0, debug_dir)
MODULE_UTILS = "ansible_collections.dbfleet.memory.plugins.module_utils"
live = importlib.import_module(MODULE_UTILS + "._kernel.live")
files = importlib.import_module(MODULE_UTILS + "._host.files")

calls = {}


def log(text):
    os.write(2, ("kill_at: " + text + "\n").encode())


def counted(name, args):
    calls[name] = calls.get(name, 0) + 1
    shown = args[0] if name != "write_live" else "%s=%s" % args
    log("%s #%d %s" % (name, calls[name], shown))
    return step == name and calls[name] == nth


def kill(where):
    log("KILL %s" % where)
    os.kill(os.getpid(), signal.SIGKILL)


def after(name, real):
    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        if counted(name, args):
            kill("after %s #%d" % (name, nth))
        return result
    return wrapper


for owner, name in ((live, "write_live"), (files, "write_file_atomic"), (files, "remove_file")):
    setattr(owner, name, after(name, getattr(owner, name)))

real_rename = os.rename


def rename(src, dst, *rest, **kwargs):
    if os.path.basename(str(src)).startswith(".dbfleet-") and counted("rename", (dst,)):
        kill("before rename #%d of %s" % (nth, src))
    return real_rename(src, dst, *rest, **kwargs)


os.rename = rename

# `PAYLOAD execute` runs the module from debug_dir with debug_dir/args, as Ansible would.
sys.argv = [payload, "execute"]
runpy.run_path(payload, run_name="__main__")
