// Print N client-credentials access tokens (JWT, at+jwt) from the test provider, one per line.
// Usage: node tokens.mjs ISSUER N
const [issuer, n] = [process.argv[2], Number(process.argv[3] ?? 1000)];
const disco = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
const auth = `Basic ${Buffer.from('api-client:api-secret').toString('base64')}`;
const out = [];
for (let i = 0; i < n; i += 50) {
  const batch = Array.from({ length: Math.min(50, n - i) }, async () => {
    const r = await fetch(disco.token_endpoint, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=api%3Aread',
    });
    if (!r.ok) throw new Error(`token endpoint: ${r.status} ${await r.text()}`);
    return (await r.json()).access_token;
  });
  out.push(...(await Promise.all(batch)));
}
process.stdout.write(`${out.join('\n')}\n`);
