// An HTTP component in JavaScript: gatewayd hands every request routed to it
// (see [[trigger.http]] in spin.toml) to this `fetch` listener, as a service
// worker would get it.
addEventListener('fetch', (event) => {
  event.respondWith(
    new Response('Hello from %%project-name%%!\n', {
      status: 200,
      headers: { 'content-type': 'text/plain' },
    }),
  );
});
