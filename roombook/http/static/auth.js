// Sign-in and registration forms (login, register and the room page's inline panel), over the
// JSON API: it sets the HttpOnly session cookies, so the page never holds a token itself.
import { api, ApiError, refreshSession, safeNext, signedIn } from './api.js';

function fail(form, error) {
  const out = form.querySelector('.form-error');
  let message = error.message;
  if (error instanceof ApiError && error.kind === 'duplicate-email') message = 'This email is already registered: sign in instead.';
  if (error instanceof ApiError && error.status === 401) message = 'Wrong email or password.';
  out.textContent = message;
  out.hidden = false;
  out.focus();
}

async function submit(form) {
  const data = new FormData(form);
  const field = (name) => (data.get(name) || '').toString().trim();
  if (form.dataset.auth === 'register') {
    const body = { email: field('email'), password: data.get('password').toString(), region: field('region') };
    for (const name of ['first_name', 'last_name']) if (field(name)) body[name] = field(name);
    await api('POST', '/auth/register', { body });
  } else {
    await api('POST', '/auth/login', { body: { email: field('email'), password: data.get('password').toString() } });
  }
}

// Wire every form[data-auth] under root; onSignedIn runs once the cookies are set.
export function wireAuth(root, onSignedIn) {
  for (const form of root.querySelectorAll('form[data-auth]')) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      form.querySelector('.form-error').hidden = true;
      try {
        await submit(form);
        onSignedIn();
      } catch (error) {
        fail(form, error);
      } finally {
        button.disabled = false;
      }
    });
  }
}

const page = document.querySelector('[data-auth-page]');
if (page) {
  const next = safeNext(page.dataset.next);
  wireAuth(page, () => window.location.assign(next));
  // a session whose access token ran out: renew it quietly instead of asking for the password
  if (signedIn() && (await refreshSession())) window.location.assign(next);
}
