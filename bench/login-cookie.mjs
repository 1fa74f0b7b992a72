// Log in through authgate with the test provider and print the session cookie (name=value), so wrk
// can replay it. Usage: node login-cookie.mjs AUTHGATE_URL USER PASSWORD
import { login, CookieJar } from '../tests/e2e/login.js';

const [url, user, password] = process.argv.slice(2);
const jar = new CookieJar();
await login(`${url}/oauth2/start?rd=/`, { jar, username: user, password });
const cookie = jar.header(new URL(url)).split('; ').find((c) => c.startsWith('_oauth2_proxy='));
if (!cookie) {
  console.error('login-cookie: no session cookie after login');
  process.exit(1);
}
console.log(cookie);
