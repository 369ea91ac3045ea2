"""labctl: the UML lab by hand - keep a fleet of real kernels up to experiment on.

  labctl.py build [--suite trixie] [--flavour db|tuned]
                                          build (or find) the cached guest image (bookworm)
  labctl.py up [--name dev] [--guest db1:512[:256[:trixie[+db|+tuned]]] ...]
                                          boot a fleet that stays up after labctl exits
  labctl.py status                        every lab on this machine, its guests, boot times
  labctl.py inventory [--name dev]        print the Ansible inventory path
  labctl.py ssh [--name dev] GUEST [CMD ...]
                                          root shell (or one command) on a guest
  labctl.py exec [--name dev] -- CMD ...  run CMD inside the lab's network namespace with
                                          the lab's Ansible settings (e.g. ansible-playbook)
  labctl.py power-cycle|reboot [--name dev] GUEST
  labctl.py down [NAME ...] [--all]       tear labs down (default: every kept lab and every
                                          stale one); --all also kills live test labs

Needs root. See tests/lab/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Run as a script, Python puts this file's directory, the lab's import root, first on
# sys.path: the package umlab imports by name.
from umlab import (FLAVOURS, RUN_ROOT, SUITES, GuestSpec, Lab, LabError, check_host, cleanup_stale, destroy_lab,
                   ensure_image, is_stale, list_labs, pid_alive)

DEFAULT_GUESTS = ["db1:512", "db2:768:256"]


def parse_guest(text: str) -> GuestSpec:
    """NAME:MEM_MB[:SWAP_MB[:SUITE[+FLAVOUR]]] -> GuestSpec (bookworm+db: PostgreSQL and MariaDB;
    bookworm+tuned: Debian's tuned)."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME:MEM_MB[:SWAP_MB[:SUITE[+FLAVOUR]]]")
    suite, _plus, flavour = (parts[3] if len(parts) == 4 else "bookworm").partition("+")
    try:
        return GuestSpec(parts[0], int(parts[1]), int(parts[2]) if len(parts) >= 3 else 0, suite, flavour)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_build(args: argparse.Namespace) -> int:
    check_host()
    print(ensure_image(f"{args.suite}+{args.flavour}" if args.flavour else args.suite))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    check_host()
    specs = args.guest or [parse_guest(g) for g in DEFAULT_GUESTS]
    lab = Lab(specs, name=args.name, keep=True).start()
    print(f"lab {lab.name} is up (netns {lab.netns}):")
    for guest in lab.guests.values():
        print(f"  {guest.name:10} {guest.ip:12} {guest.spec.image:12} mem {guest.spec.mem_mb} MiB,"
              f" swap {guest.spec.swap_mb} MiB, SSH after {guest.boot_seconds[-1]} s")
    here = Path(__file__).resolve().parent
    print(f"inventory: {lab.inventory_path}\n"
          f"  {here}/labctl.py ssh --name {lab.name} {next(iter(lab.guests))}\n"
          f"  {here}/labctl.py exec --name {lab.name} -- ansible -i {lab.inventory_path} all -m ping\n"
          f"  {here}/labctl.py down {lab.name}")
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    labs = list_labs()
    if not labs:
        print(f"no labs under {RUN_ROOT}")
    for state in labs:
        owner = "kept (labctl up)" if state.get("keep") else f"owned by pid {state.get('owner_pid')}"
        stale = " STALE" if is_stale(state) else ""
        print(f"{state['name']}: {owner}{stale}; inventory {state.get('inventory', '-')}")
        for guest in state.get("guests", []):
            running = guest.get("pid") is not None and pid_alive(guest["pid"])
            print(f"  {guest['name']:10} {guest['ip']:12} {guest.get('suite', 'bookworm'):9}"
                  f" mem {guest['mem_mb']} MiB swap {guest['swap_mb']} MiB"
                  f" {'running pid ' + str(guest['pid']) if running else 'DOWN'};"
                  f" boots {guest.get('boot', 0)}, SSH after {guest.get('boot_seconds', [])} s")
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    print(Lab.attach(args.name).inventory_path)
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    if args.guest not in lab.guests:
        raise LabError(f"no guest {args.guest} in lab {args.name}: {', '.join(lab.guests)}")
    argv = lab.ssh_argv(args.guest, multiplex=False, extra=["-t"] if sys.stdin.isatty() else [])
    if args.command:
        argv += ["--", " ".join(args.command)]
    os.execvp(argv[0], argv)
    return 1  # not reached


def cmd_exec(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("exec: give a command after --")
    os.environ.update(lab.ansible_env())
    argv = lab.netns_argv(command)
    os.execvp(argv[0], argv)
    return 1  # not reached


def cmd_power(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    if args.action == "power-cycle":
        lab.power_cycle(args.guest)
    else:
        lab.reboot(args.guest)
    lab.save_state()
    print(f"{args.guest}: up again, SSH after {lab.guests[args.guest].boot_seconds[-1]} s")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if args.names:
        for name in args.names:
            if not (RUN_ROOT / name).exists():
                raise LabError(f"no lab {name} under {RUN_ROOT}")
            destroy_lab(RUN_ROOT / name)
            print(f"removed lab {name}")
        return 0
    for state in list_labs():
        if state.get("keep") or args.all:
            destroy_lab(Path(state["dir"]))
            print(f"removed lab {state['name']}")
    for name in cleanup_stale():
        print(f"removed stale {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labctl.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build")
    build.add_argument("--suite", choices=SUITES, default="bookworm")
    build.add_argument("--flavour", choices=[f for f in FLAVOURS if f],
                       help="db: PostgreSQL and MariaDB; tuned: Debian's tuned")
    build.set_defaults(func=cmd_build)
    up = sub.add_parser("up")
    up.add_argument("--name", default="dev")
    up.add_argument("--guest", action="append", type=parse_guest,
                    help="NAME:MEM_MB[:SWAP_MB[:SUITE[+db|+tuned]]], repeatable")
    up.set_defaults(func=cmd_up)
    sub.add_parser("status").set_defaults(func=cmd_status)
    inv = sub.add_parser("inventory")
    inv.add_argument("--name", default="dev")
    inv.set_defaults(func=cmd_inventory)
    ssh = sub.add_parser("ssh")
    ssh.add_argument("guest")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.add_argument("--name", default="dev")
    ssh.set_defaults(func=cmd_ssh)
    ex = sub.add_parser("exec")
    ex.add_argument("--name", default="dev")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    ex.set_defaults(func=cmd_exec)
    for action in ("power-cycle", "reboot"):
        power = sub.add_parser(action)
        power.add_argument("guest")
        power.add_argument("--name", default="dev")
        power.set_defaults(func=cmd_power, action=action)
    down = sub.add_parser("down")
    down.add_argument("names", nargs="*")
    down.add_argument("--all", action="store_true", help="also live test labs of other processes")
    down.set_defaults(func=cmd_down)
    args = parser.parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise LabError("labctl needs root")
        return args.func(args)
    except LabError as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
