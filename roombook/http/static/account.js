// The account pages: signing out revokes this login's refresh tokens through the API.
import { api } from './api.js';

const logout = document.getElementById('logout');
if (logout) {
  logout.addEventListener('click', async () => {
    logout.disabled = true;
    try {
      await api('POST', '/auth/logout');
    } finally {
      window.location.assign('/');
    }
  });
}
