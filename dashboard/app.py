"""The Linker console: ``streamlit run dashboard/app.py`` (or ``python -m streamlit run ...``).

Every run: page config → who is signed in (session, OIDC ``st.user``, or the dev override;
a password session is re-checked against its account, see ``password_session_actor``) →
the navigation of that role's pages only (a page missing from the navigation cannot be opened,
not even by URL: its address holds a hidden stand-in that says why on the landing page, Health,
which sits at the root address and also answers at ``/health``) → the sidebar with the user,
role and Sign out → flash messages → the page.
Signed-out sessions see only the sign-in form, but at every page's address: a bookmarked
``/debugger?exchange=5`` shows the form there, and signing in reruns the same page (a page's
identity is its ``url_path``), so the user lands where the bookmark pointed, query included,
when the role may open it. See ``dashboard/auth.py`` for the session keys.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import auth, present, state, warmup  # noqa: E402,F401  (warmup: once per process)
from linker.core.permissions import Actor  # noqa: E402
from linker.services.console_sessions import SESSION_TTL  # noqa: E402
from linker.services.passwords import HashingBusy  # noqa: E402
from linker.services.signin import TooManyAttempts  # noqa: E402

PAGES_DIR = ROOT / "pages"
FAVICON = ROOT / "dashboard" / "static" / "favicon.png"
"""The tab icon, served from the console's own origin (a ``:material/...`` icon made every
page load ask fonts.gstatic.com for it)."""
_DEV_NOTICE = "_app_dev_notice"
_OIDC_REFUSAL = "_app_oidc_refusal"
_ACCOUNT_NOTICE = "_app_account_notice"
_TOKEN = "_app_session_token"
_CLEAR_COOKIE = "_app_clear_cookie"
_SIGN_IN_REFUSAL = "_app_sign_in_refusal"
"""Why the last Sign in click was refused (message, whether the form ends there), shown once
by the run that follows it."""
SIGN_IN_PATH = "sign-in"
SESSION_COOKIE = "linker_session"
"""The browser cookie holding the console session token (see linker.services.console_sessions:
the database keeps only its hash)."""
ACCOUNT_DISABLED = ("You were signed out: your account {username} was disabled or removed. "
                    "Ask an admin to enable it.")


def secrets() -> dict[str, Any]:
    """``st.secrets`` as a dict; empty when there is no secrets file."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:
        return {}


def client_address() -> str:
    """The browser's address as Streamlit sees it (empty when unknown, e.g. under AppTest)."""
    try:
        return str(st.context.ip_address or "")
    except Exception:  # outside a request (no context): the address is simply unknown
        return ""


def oidc_logged_in() -> bool:
    """True when ``st.user`` holds a signed-in OIDC identity."""
    return bool(st.user.to_dict().get("is_logged_in", False))


def resolve_actor() -> Actor | None:
    """Who is signed in: a password or dev sign-in kept in the session, else an OIDC user
    whose claim maps to a role, else the dev override (outside production), else nobody."""
    st.session_state.pop(_DEV_NOTICE, None)
    st.session_state.pop(_OIDC_REFUSAL, None)
    st.session_state.pop(_ACCOUNT_NOTICE, None)
    actor = auth.session_actor()
    if actor is not None:
        if auth.session_source() == auth.SOURCE_PASSWORD:
            return password_session_actor(actor)
        return actor
    actor = remembered_actor()
    if actor is not None:
        return actor
    oidc = auth.oidc_config(secrets())
    if oidc is not None and oidc_logged_in():
        claims = st.user.to_dict()
        username = auth.username_from_claims(claims)
        try:
            role = auth.role_from_claims(claims, oidc.role_claim, oidc.role_map)
        except ValueError as exc:
            st.session_state[_OIDC_REFUSAL] = f"Sign-in is misconfigured: {exc}"
            return None
        if role is None:
            st.session_state[_OIDC_REFUSAL] = (
                f"{username} signed in, but has no Linker role: none of the values of the "
                f"'{oidc.role_claim}' claim is mapped to a role in [linker.role_map]. Ask an "
                "admin to add you to a Linker group, then sign in again.")
            return None
        return Actor(username, role)
    if not st.session_state.get(auth.SESSION_SIGNED_OUT):
        try:
            role = auth.dev_role()
        except auth.DevRoleRefused as exc:
            st.session_state[_DEV_NOTICE] = str(exc)
            return None
        if role is not None:
            actor = Actor(auth.DEV_USERNAME, role)
            auth.sign_in(actor, auth.SOURCE_DEV)
            return actor
    return None


def remembered_actor() -> Actor | None:
    """The account of a password sign-in made before a reload (the session cookie), while
    it is valid; None otherwise (and always after Sign out in this tab)."""
    if st.session_state.get(auth.SESSION_SIGNED_OUT):
        return None
    token = st.context.cookies.get(SESSION_COOKIE)
    if not isinstance(token, str) or not token:
        return None
    actor = state.services().console_sessions.resolve(token)
    if actor is not None:
        auth.sign_in(actor, auth.SOURCE_PASSWORD)
        st.session_state[_TOKEN] = token
    return actor


def write_cookie(value: str, max_age_s: int) -> None:
    """Set (or, with max age 0, delete) the session cookie in the browser. ``value`` is a
    URL-safe token Linker made, never user input."""
    st.html(f"<script>document.cookie = '{SESSION_COOKIE}={value}; path=/; "
            f"max-age={max_age_s}; samesite=strict';</script>", unsafe_allow_javascript=True)


def remember_sign_in(actor: Actor) -> None:
    """After a password sign-in: a session token for reloads, set as a cookie from the
    next run on (see ``keep_session_cookie``)."""
    st.session_state[_TOKEN] = state.services().console_sessions.issue(actor)


def keep_session_cookie() -> None:
    """Write the session cookie on every run until the browser has sent it back.

    Writing it once was not enough: a click made just after Sign in starts a new run that
    can interrupt the one carrying the cookie script before the browser ran it, and the
    next reload then asked for the password again. The browser's cookies are those it sent
    when the tab connected, so this writes until a reload brings the token; the script is
    idempotent and an unchanged element is not re-run."""
    token = st.session_state.get(_TOKEN)
    if token and st.context.cookies.get(SESSION_COOKIE) != token:
        write_cookie(str(token), int(SESSION_TTL.total_seconds()))


def password_session_actor(signed_in: Actor) -> Actor | None:
    """The account behind a password session as it is now (one indexed query per run).

    Disabled or removed: the session is signed out and the sign-in page says why. Role
    changed: the session takes the new role, so this run's navigation is built for it.
    """
    current = state.services().users.session_actor(signed_in.username)
    if current is None:
        auth.sign_out_session()
        st.session_state[_ACCOUNT_NOTICE] = ACCOUNT_DISABLED.format(username=signed_in.username)
        return None
    if current != signed_in:
        auth.sign_in(current, auth.SOURCE_PASSWORD)
        state.flash(f"Your role is now {current.role.value.replace('_', ' ')} "
                    f"(it was {signed_in.role.value.replace('_', ' ')}).", "info")
    return current


def sign_in_page(requested: auth.PageSpec | None = None) -> None:
    """The sign-in form, centred on the wide page; ``requested``: the page whose address the
    visitor opened (signing in opens it)."""
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        sign_in_form(requested)


def sign_in_at(spec: auth.PageSpec) -> Callable[[], None]:
    """The signed-out stand-in for ``spec``'s page: the sign-in form at its address."""
    def render() -> None:
        sign_in_page(spec)

    render.__name__ = f"sign_in_{spec.key}"
    return render


def signed_out_pages() -> list[Any]:
    """The navigation of a signed-out session: the sign-in page (default) plus every page's
    address showing the sign-in form, never the page itself."""
    return [st.Page(sign_in_page, title="Sign in", icon=":material/login:",
                    url_path=SIGN_IN_PATH, default=True)] + [
        st.Page(sign_in_at(spec), title="Sign in", icon=":material/login:", url_path=spec.key)
        for spec in auth.PAGES]


def not_allowed_at(spec: auth.PageSpec, actor: Actor, landing: Any) -> Callable[[], None]:
    """The stand-in at the address of ``spec``'s page for a role that may not open it (a
    bookmark, a typed address, a sign-in there): say why on the role's landing page."""
    def render() -> None:
        role = actor.role.value.replace("_", " ")
        state.flash(f"{present.text(actor.username)} ({role}) may not open {spec.title}, "
                    "the page you asked for; ask an admin for a role that allows it.", "warning")
        st.switch_page(landing)

    render.__name__ = f"not_allowed_{spec.key}"
    return render


def to_landing(landing: Any) -> Callable[[], None]:
    """The stand-in at the landing page's own name (``/health``): the landing page sits at
    the root address, so its name would otherwise be Streamlit's "Page not found"."""
    def render() -> None:
        st.switch_page(landing)

    render.__name__ = "to_landing"
    return render


def signed_in_pages(actor: Actor) -> list[Any]:
    """The navigation of a signed-in session: the role's pages (the first one, the landing
    page, at the root address), then hidden stand-ins at the landing page's name and at the
    address of every page the role may not open, which lead to the landing page (with a
    note saying why for the latter); they never show the page itself."""
    allowed = auth.pages_for(actor.role)
    pages = [st.Page(PAGES_DIR / spec.script, title=spec.title, icon=spec.icon,
                     url_path="" if index == 0 else spec.key, default=index == 0)
             for index, spec in enumerate(allowed)]
    landing = pages[0]
    hidden = [st.Page(to_landing(landing), title=allowed[0].title, url_path=allowed[0].key,
                      visibility="hidden")]
    hidden += [st.Page(not_allowed_at(spec, actor, landing), title=spec.title,
                       url_path=spec.key, visibility="hidden")
               for spec in auth.PAGES if spec not in allowed]
    return pages + hidden


def sign_in_form(requested: auth.PageSpec | None = None) -> None:
    """Username and password of a built-in account; OIDC buttons when ``[auth]`` is set."""
    st.title(":material/link: Linker")
    refusal = st.session_state.get(_OIDC_REFUSAL)
    if refusal:
        st.error(refusal)
        if st.button("Sign out", key="auth.oidc_sign_out"):
            st.logout()
        return
    if st.session_state.get(_ACCOUNT_NOTICE):
        st.error(st.session_state[_ACCOUNT_NOTICE])
    if st.session_state.get(_DEV_NOTICE):
        st.warning(st.session_state[_DEV_NOTICE])
    st.subheader("Sign in")
    if requested is not None:
        st.caption(f"Sign in to open {requested.title}.")
    with st.form("sign_in", border=True):
        st.text_input("Username", key="sign_in.username", autocomplete="username")
        st.text_input("Password", type="password", key="sign_in.password",
                      autocomplete="current-password")
        st.form_submit_button("Sign in", type="primary", key="sign_in.submit",
                              on_click=sign_in_clicked)
    refused = st.session_state.pop(_SIGN_IN_REFUSAL, None)
    if refused is not None:
        message, final = refused
        st.error(message)
        if final:
            return
    oidc = auth.oidc_config(secrets())
    if oidc is not None:
        st.divider()
        for provider in oidc.providers:
            st.button(f"Sign in with {provider or 'single sign-on'}",
                      key=f"sign_in.oidc.{provider}", on_click=st.login,
                      args=(provider,) if provider else ())


def sign_in_clicked() -> None:
    """Callback of Sign in: check the account; signed in, the run that follows the click
    builds the role's navigation at the same page address and query, so the requested page
    opens (or, when the role may not open it, its stand-in says so on the landing page).
    Refused: the form says why (too many attempts and a busy server end the form there)."""
    username = str(st.session_state.get("sign_in.username", ""))
    password = str(st.session_state.get("sign_in.password", ""))
    actor = None
    try:
        if username.strip() and password:
            actor = state.services().users.authenticate(username, password,
                                                         client=client_address())
    except (TooManyAttempts, HashingBusy) as exc:
        st.session_state[_SIGN_IN_REFUSAL] = (str(exc)[0].upper() + str(exc)[1:], True)
        return
    if actor is None:
        st.session_state[_SIGN_IN_REFUSAL] = ("Wrong username or password.", False)
        return
    auth.sign_in(actor, auth.SOURCE_PASSWORD)
    remember_sign_in(actor)


def sidebar(actor: Actor) -> None:
    """The signed-in user, the role, Sign out (and the session cookie's script)."""
    with st.sidebar:
        st.markdown(f"Signed in as **{actor.username}**")
        st.caption(f"Role: {actor.role.value.replace('_', ' ')}")
        if st.button("Sign out", key="auth.sign_out", icon=":material/logout:"):
            state.services().users.sign_out(actor, client=client_address())
            state.services().console_sessions.revoke(str(st.session_state.get(_TOKEN, "")))
            if auth.session_actor() is None and oidc_logged_in():
                st.logout()
            auth.sign_out_session()
            st.session_state[_CLEAR_COOKIE] = True
            st.rerun()
        keep_session_cookie()  # last in the sidebar: its empty element's gap shows nowhere


def main() -> None:
    """One run of the frame."""
    st.set_page_config(page_title="Linker", page_icon=str(FAVICON), layout="wide")
    actor = resolve_actor()
    auth.set_current_actor(actor)
    if actor is None:
        if st.session_state.pop(_CLEAR_COOKIE, False):
            write_cookie("", 0)
        st.navigation(signed_out_pages(), position="hidden").run()
        return
    state.start_probe_ticker()
    navigation = st.navigation(signed_in_pages(actor), position="sidebar")
    sidebar(actor)
    state.show_flashes()
    navigation.run()


main()
