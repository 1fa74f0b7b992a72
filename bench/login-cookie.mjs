// Log in through authgate (or another relying party) with the test provider and print the session
// cookie (name=value), so wrk can replay it.
// Usage: node login-cookie.mjs URL USER PASSWORD [START_PATH COOKIE_NAME]
//   defaults: authgate's /oauth2/start?rd=/ and its _oauth2_proxy cookie; the bench logs in to
//   mod_auth_openidc with a protected path and mod_auth_openidc_session.
import { login, CookieJar } from '../tests/e2e/login.js';

const [url, user, password, start = '/oauth2/start?rd=/', name = '_oauth2_proxy'] = process.argv.slice(2);
const jar = new CookieJar();
await login(`${url}${start}`, { jar, username: user, password });
const cookie = jar.header(new URL(url)).split('; ').find((c) => c.startsWith(`${name}=`));
if (!cookie) {
  console.error(`login-cookie: no ${name} cookie after login`);
  process.exit(1);
}
console.log(cookie);
