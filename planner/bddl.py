"""Reading LIBERO's BDDL problem files (an S-expression format) into plain data, without LIBERO installed.

Only what the planner needs: the language instruction, the objects and fixtures with their categories, the
objects of interest, the regions (name, target, xy ranges, the yaw range a fixture placed there is turned by),
the initial facts (where each instance starts, in words: the only thing that tells two identical bowls apart) and
the goal as nested lists of symbols.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from configs import Said, show
from planner.errors import TaskError

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass(frozen=True)
class BddlProblem:
    problem: str
    language: str
    objects: dict[str, str]                      # instance name -> category
    fixtures: dict[str, str]
    obj_of_interest: tuple[str, ...]
    regions: dict[str, dict] = field(default_factory=dict)   # region name -> {target, ranges[, yaw_rad]}
    goal: list = field(default_factory=list)     # e.g. ["And", ["In", "a_1", "basket_1_contain_region"]]
    init: tuple = ()                             # (:init ...) facts, e.g. (["On", "bowl_1", "main_table_x_region"],)


def parse_sexpr(text: str, where: str) -> list:
    """Nested lists of string atoms; ';' starts a comment."""
    text = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise TaskError(where, None, "balanced parentheses", Said("an unbalanced ')'"))
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1 or len(stack[0]) != 1 or not isinstance(stack[0][0], list):
        raise TaskError(where, None, "one (define ...) form",
                        Said(f"{len(stack[0])} top-level forms" if len(stack) == 1 else "an unclosed '('"))
    return stack[0][0]


def _typed_names(items: list, where: str, section: str) -> dict[str, str]:
    """`a b - cat c - cat2` -> {a: cat, b: cat, c: cat2}."""
    out, pending = {}, []
    it = iter(items)
    for tok in it:
        if tok == "-":
            category = next(it, None)
            if not isinstance(category, str) or not pending:
                got = Said("'-' with no category after it") if not isinstance(category, str) \
                    else Said(f"'- {show(category)[1:-1]}' with no names before it")
                raise TaskError(where, section, "'name ... - category'", got)
            out.update({n: category for n in pending})
            pending = []
        elif isinstance(tok, str):
            pending.append(tok)
    if pending:
        raise TaskError(where, section, "a category after every name ('name ... - category')",
                        Said(f"names without a category: {show(pending)}"))
    return out


def parse_bddl(text: str, where: str = "BDDL") -> BddlProblem:
    tree = parse_sexpr(text, where)
    if not tree or tree[0] != "define":
        raise TaskError(where, None, "(define (problem NAME) ...)", Said(f"a form starting with {show(tree[:1])}"))
    problem, language, objects, fixtures, interest, regions, goal, init = "", "", {}, {}, (), {}, [], ()
    for part in tree[1:]:
        if not isinstance(part, list) or not part:
            continue
        head = part[0] if isinstance(part[0], str) else ""
        if head == "problem" and len(part) > 1:
            problem = str(part[1])
        elif head == ":language":
            language = " ".join(str(t) for t in part[1:])
        elif head == ":objects":
            objects = _typed_names(part[1:], where, ":objects")
        elif head == ":fixtures":
            fixtures = _typed_names(part[1:], where, ":fixtures")
        elif head == ":obj_of_interest":
            interest = tuple(str(t) for t in part[1:])
        elif head == ":regions":
            for reg in part[1:]:
                if not isinstance(reg, list) or not reg or not isinstance(reg[0], str):
                    continue
                info: dict = {"target": None, "ranges": []}
                for attr in reg[1:]:
                    if isinstance(attr, list) and attr and attr[0] == ":target" and len(attr) > 1:
                        info["target"] = str(attr[1])
                    elif isinstance(attr, list) and attr and attr[0] == ":ranges":
                        # (:ranges ((x0 y0 x1 y1) ...))
                        groups = attr[1] if len(attr) == 2 and isinstance(attr[1], list) else attr[1:]
                        info["ranges"] = [[float(v) for v in r] for r in groups
                                          if isinstance(r, list) and all(isinstance(v, str) for v in r)]
                    elif isinstance(attr, list) and attr and attr[0] == ":yaw_rotation":
                        # (:yaw_rotation ((lo hi))): LIBERO turns a fixture placed in the region about z by an
                        # angle drawn from [lo, hi] (rad); the middle is what the task's words say
                        groups = attr[1] if len(attr) == 2 and isinstance(attr[1], list) else attr[1:]
                        vals = [float(v) for r in groups if isinstance(r, list) for v in r if isinstance(v, str)]
                        if vals:
                            info["yaw_rad"] = [min(vals), max(vals)]
                regions[reg[0]] = info
        elif head == ":init":
            init = tuple(fact for fact in part[1:] if isinstance(fact, list) and fact
                         and all(isinstance(a, str) for a in fact))
        elif head == ":goal":
            if len(part) != 2 or not isinstance(part[1], list):
                raise TaskError(where, ":goal", "one expression", Said(f"{len(part) - 1} items"))
            goal = part[1]
    if not language:
        raise TaskError(where, ":language", "a (:language ...) instruction", Said("no (:language ...) form"))
    if not goal:
        raise TaskError(where, ":goal", "a (:goal ...) expression", Said("no (:goal ...) form"))
    return BddlProblem(problem, language, objects, fixtures, interest, regions, goal, init)
