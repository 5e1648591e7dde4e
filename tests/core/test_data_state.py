"""The rewriter's reading of markup between tokens, checked against a reference.

``cookiegate.rewrite._enclosing`` decides, with two regular expressions, whether
a position is in the HTML tokenizer's *data* state (text) or inside a tag,
comment or bogus comment. Here a plain character-by-character state machine
written from the WHATWG tokenizer (13.2.5: the data, tag, attribute, comment and
bogus-comment states; raw-text elements are tokens of their own in the rewriter
and are not part of these runs) says the same for every position of arbitrary
strings over the characters that matter.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cookiegate.rewrite import _FAST_RUN, _enclosing

WS = "\t\n\f\r "


def reference_data_positions(doc: str) -> list[bool]:
    """``out[p]``: the tokenizer reads ``doc[p]`` in the data state (also when it
    gets there by reconsuming it: ``<`` before a space is text); ``out[len(doc)]``:
    the state after the whole string."""
    out: list[bool] = []
    state = "data"
    i = 0
    n = len(doc)
    while i <= n:
        if len(out) == i:
            out.append(state == "data")
        if i == n:
            break
        c = doc[i]
        reconsume = False
        if state == "data":
            if c == "<":
                state = "tag_open"
        elif state == "tag_open":
            if c == "!":
                if doc.startswith("--", i + 1):
                    state = "comment_start"
                    # the two dashes are consumed with the "!"
                    out.extend([False, False])
                    i += 3
                    continue
                state = "bogus_comment"
            elif c == "/":
                state = "end_tag_open"
            elif c.isascii() and c.isalpha():
                state = "tag_name"
            elif c == "?":
                state, reconsume = "bogus_comment", True
            else:
                state, reconsume = "data", True
        elif state == "end_tag_open":
            if c.isascii() and c.isalpha():
                state = "tag_name"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "bogus_comment", True
        elif state == "tag_name":
            if c in WS:
                state = "before_attr_name"
            elif c == "/":
                state = "self_closing"
            elif c == ">":
                state = "data"
        elif state == "before_attr_name":
            if c in WS:
                pass
            elif c in "/>":
                state, reconsume = "after_attr_name", True
            elif c == "=":
                state = "attr_name"  # a name starting with "="
            else:
                state, reconsume = "attr_name", True
        elif state == "attr_name":
            if c in WS or c in "/>":
                state, reconsume = "after_attr_name", True
            elif c == "=":
                state = "before_attr_value"
        elif state == "after_attr_name":
            if c in WS:
                pass
            elif c == "/":
                state = "self_closing"
            elif c == "=":
                state = "before_attr_value"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "attr_name", True
        elif state == "before_attr_value":
            if c in WS:
                pass
            elif c == '"':
                state = "value_dq"
            elif c == "'":
                state = "value_sq"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "value_unquoted", True
        elif state == "value_dq":
            if c == '"':
                state = "after_value_quoted"
        elif state == "value_sq":
            if c == "'":
                state = "after_value_quoted"
        elif state == "value_unquoted":
            if c in WS:
                state = "before_attr_name"
            elif c == ">":
                state = "data"
        elif state == "after_value_quoted":
            if c in WS:
                state = "before_attr_name"
            elif c == "/":
                state = "self_closing"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "before_attr_name", True
        elif state == "self_closing":
            if c == ">":
                state = "data"
            else:
                state, reconsume = "before_attr_name", True
        elif state == "bogus_comment":
            if c == ">":
                state = "data"
        elif state == "comment_start":
            if c == "-":
                state = "comment_start_dash"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "comment", True
        elif state == "comment_start_dash":
            if c == "-":
                state = "comment_end"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "comment", True
        elif state == "comment":
            if c == "-":
                state = "comment_end_dash"
        elif state == "comment_end_dash":
            if c == "-":
                state = "comment_end"
            else:
                state, reconsume = "comment", True
        elif state == "comment_end":
            if c == ">":
                state = "data"
            elif c == "!":
                state = "comment_end_bang"
            elif c != "-":
                state, reconsume = "comment", True
        elif state == "comment_end_bang":
            if c == "-":
                state = "comment_end_dash"
            elif c == ">":
                state = "data"
            else:
                state, reconsume = "comment", True
        if reconsume:
            # the same character again, in the new state: a "<" that starts no
            # tag is text, and what follows it is read in the data state
            if state == "data":
                out[i] = True
            continue
        i += 1
    return out


def rewriter_data_positions(doc: str) -> list[bool]:
    buf = doc.encode("latin-1")
    return [_enclosing(buf, 0, p) == (-1, -1) for p in range(len(buf) + 1)]


def test_reference_machine_on_known_cases() -> None:
    doc = '<img alt="<a>" src=x>t'
    data = reference_data_positions(doc)
    assert data[0] and not data[9] and not data[13] and data[21]
    assert reference_data_positions("<!-- a > b -->x")[14]
    assert not reference_data_positions("<!-- a > b -->x")[8]
    assert reference_data_positions("a < b")[3]


def test_known_cases_agree() -> None:
    for doc in (
        '<img alt="<a><b><c>" src=x>',
        '<p ="><b>">',
        '<p a=b="><b>">',
        '<p a = "><b>">',
        "<!--><p title='-->'>",
        "<!---->x<!-- -- --!>y",
        "</ a='>'>",
        "<?x a='>'>",
        "<!DOCTYPE html a='>'>",
        "a<b<c d=e<f>g",
        "</>x</3 '>",
        "<!--a>",
        "<!-- >",
        '<!--">',
        "<!--/>",
        "<!--<>",
        "<!--?>",
        "<!-- a > b -->x",
    ):
        assert rewriter_data_positions(doc) == reference_data_positions(doc), doc


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="<>/!?-=\"' \t\n\r\f`abAZ", max_size=48))
def test_every_position_agrees_with_the_tokenizer(doc: str) -> None:
    assert rewriter_data_positions(doc) == reference_data_positions(doc)


#: pieces that make comments, bogus comments and values open and close often
PIECES = ["<", ">", "<!--", "-->", "--!>", "<!", "<?", "</", "=", '"', "'", " ", "a", "/", "-", "!"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
def test_pieces_agree_with_the_tokenizer(doc: str) -> None:
    assert rewriter_data_positions(doc) == reference_data_positions(doc)


#: pieces of tags: names, separators, attribute names, "=", quotes and values
TAG_PIECES = [
    "<a",
    "<p",
    "</a",
    "<b-c",
    ">",
    "/>",
    " ",
    "\t",
    "/",
    "=",
    '="',
    "='",
    '"',
    "'",
    " a",
    " b-",
    " x=",
    "X",
    "1",
    "<",
    "`",
    "!",
    "<!",
    "<?",
]


def fast_run_ends_in_data(doc: str) -> None:
    """What ``_FAST_RUN`` consumes (to any end position) ends in the data state."""
    buf = doc.encode("latin-1")
    data = reference_data_positions(doc)
    for t in range(len(buf) + 1):
        m = _FAST_RUN.match(buf, 0, t)
        end = m.end() if m is not None else 0
        assert data[end], (doc, t, end)


def test_fast_run_known_cases() -> None:
    for doc in (
        '<p ="><a b=">x',
        '<p a= "><a b=">x',
        '<p a ="><a b=">x',
        '<p a/="><a b=">x',
        '<p a=b="><a c=">x',
        '<p="><a b=">x',
        '<p a="x"="><a b=">x',
        '<p a="x"b="><a c=">x',
        "<p a='x'b='><a c='>x",
        '<p a=`"><a b=">x',
        '<img src="x"/><a b=">x',
        '<a href=/x/><b c=">x',
    ):
        fast_run_ends_in_data(doc)
    # and it reads the usual markup to its end
    page = '<li class="card"><a href="/p/1"><img src="/i/1.webp" alt="A 1" width=400></a></li>\n'
    m = _FAST_RUN.match(page.encode())
    assert m is not None and m.end() == len(page)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(TAG_PIECES), max_size=20).map("".join))
def test_fast_run_stops_only_in_the_data_state(doc: str) -> None:
    fast_run_ends_in_data(doc)
