/**
 * Who may see the dashboard. On a loopback address (the default, 127.0.0.1) anyone on this machine
 * may, as with the servers' metrics. On any other address the page shows training data to the
 * network, so it follows the servers' rules: the cluster token (from --token-file, LOOM_TOKEN or
 * ~/.loom/token, as `loom worker` reads it: cluster-token.ts), compared in constant time
 * (parameter-server's tokensEqual).
 *
 * The token comes in `Authorization: Bearer TOKEN` (curl, scripts) or in the `loom_token` cookie,
 * which a browser gets by posting the token to /login from the form it is shown first. The cookie
 * is HttpOnly and SameSite=Strict: the page's scripts never see it and no other site sends it. The
 * token is never put in a URL, where history and logs would keep it.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { tokensEqual } from '@loom/parameter-server';

export const COOKIE = 'loom_token';

/** True for 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const h = host.replace(/^\[|\]$/g, '');
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h.startsWith('::ffff:127.');
  return false;
}

/** The token a request presents (bearer header first, then the cookie), or ''. */
export function presentedToken(req: IncomingMessage): string {
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return bearer.trim();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) {
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return '';
      }
    }
  }
  return '';
}

/** True when the request may be served: no token is required, or it presents the right one. */
export function allowed(req: IncomingMessage, token: string | undefined): boolean {
  return token === undefined || tokensEqual(presentedToken(req), token);
}

/** The Set-Cookie header that lets a browser in once it posted the token. */
export function tokenCookie(token: string): string {
  return `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}

/** The page shown instead of the dashboard to a browser without the token. */
export const LOGIN_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Loom dashboard: token</title>
<style>body{font:15px system-ui,sans-serif;margin:4em auto;max-width:32em;color:#222}input{font:inherit;width:100%;padding:.4em;margin:.5em 0}</style></head>
<body><h1>Loom dashboard</h1>
<p>This dashboard listens on a network address, so it asks for the cluster token (the one in
<code>~/.loom/token</code>, <code>--token-file</code> or <code>LOOM_TOKEN</code> where it was started).</p>
<form method="post" action="/login"><input type="password" name="token" autocomplete="current-password" placeholder="cluster token" autofocus>
<button type="submit">Open</button></form></body></html>
`;
