// The room page's calendar and booking flow, all in the browser: nights from the API's calendar
// (taken ones cannot be picked), the total, sign-in or registration inline, the card turned into a
// token here (card.js), then POST /bookings with one Idempotency-Key per attempt: a double click,
// or a retry after a network error or a 503, sends the same key and body, so it never books twice.
import { api, ApiError, refreshSession, signedIn } from './api.js';
import { wireAuth } from './auth.js';
import { CardError, tokenize } from './card.js';
import { addDays, addMonths, dayLabel, daysBetween, firstOfMonth, money, today } from './format.js';

const MONTHS = 3;
const MAX_NIGHTS = 30;
const WEEKDAYS = ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'];

const root = document.getElementById('booking');
const room = {
  id: Number(root.dataset.roomId),
  price: Number(root.dataset.price),
  currency: root.dataset.currency,
  locale: root.dataset.locale,
  capacity: Number(root.dataset.capacity),
};
const calendar = document.getElementById('calendar');
const selection = document.getElementById('selection');
const form = document.getElementById('booking-form');
const guests = document.getElementById('booking-guests');
const totalOut = document.getElementById('booking-total');
const button = document.getElementById('book-button');
const outcome = document.getElementById('booking-outcome');
const authPanel = document.getElementById('auth-panel');
const card = () => ({
  number: document.getElementById('card-number').value,
  expiry: document.getElementById('card-expiry').value,
  cvc: document.getElementById('card-cvc').value,
});

const state = { nights: new Map(), checkIn: null, checkOut: null, first: today(), attempt: null, busy: false };

const free = (iso) => state.nights.get(iso) === 'available';
const price = (amount) => money(amount, room.currency, room.locale);
const longDay = (iso) => dayLabel(iso, room.locale, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });

// every night of [checkIn, checkOut) free, at most MAX_NIGHTS of them
function bookable(checkIn, checkOut) {
  const n = daysBetween(checkIn, checkOut);
  if (n < 1 || n > MAX_NIGHTS) return false;
  for (let i = 0; i < n; i += 1) if (!free(addDays(checkIn, i))) return false;
  return true;
}

function selectable(iso) {
  if (state.checkIn && !state.checkOut) return iso === state.checkIn || (iso > state.checkIn && bookable(state.checkIn, iso));
  return iso >= state.first && free(iso);
}

function dayButton(iso) {
  const button = document.createElement('button');
  button.type = 'button';
  button.dataset.date = iso;
  button.textContent = String(Number(iso.slice(8)));
  const known = state.nights.get(iso);
  const status = iso < state.first || known === 'past' ? 'past' : known === 'available' ? 'available' : 'taken';
  button.setAttribute('aria-label', `${longDay(iso)}, ${status === 'taken' ? 'not available' : status}`);
  button.classList.add(status);
  button.disabled = !selectable(iso);
  const picked = iso === state.checkIn || iso === state.checkOut;
  button.setAttribute('aria-pressed', String(picked));
  if (state.checkIn && state.checkOut && iso > state.checkIn && iso < state.checkOut) button.classList.add('in-stay');
  return button;
}

function month(first) {
  const table = document.createElement('table');
  table.className = 'month';
  table.createCaption().textContent = dayLabel(first, room.locale, { month: 'long', year: 'numeric' });
  const head = table.createTHead().insertRow();
  for (const name of WEEKDAYS) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = name;
    head.append(th);
  }
  const body = table.createTBody();
  let row = body.insertRow();
  const offset = (new Date(first + 'T00:00:00Z').getUTCDay() + 6) % 7; // Monday first
  for (let i = 0; i < offset; i += 1) row.insertCell();
  for (let iso = first; iso < addMonths(first, 1); iso = addDays(iso, 1)) {
    if (row.cells.length === 7) row = body.insertRow();
    row.insertCell().append(dayButton(iso));
  }
  return table;
}

function drawCalendar() {
  const focused = document.activeElement?.dataset?.date;
  const start = firstOfMonth(state.first);
  const months = [];
  for (let i = 0; i < MONTHS; i += 1) months.push(month(addMonths(start, i)));
  calendar.replaceChildren(...months);
  if (focused) calendar.querySelector(`button[data-date="${focused}"]`)?.focus();
  drawSelection();
}

function drawSelection() {
  const { checkIn, checkOut } = state;
  form.hidden = !(checkIn && checkOut);
  if (!checkIn) selection.textContent = 'Pick your check-in night on the calendar.';
  else if (!checkOut) selection.textContent = `Check in ${longDay(checkIn)}. Now pick your check-out day.`;
  else {
    const n = daysBetween(checkIn, checkOut);
    selection.textContent = `${longDay(checkIn)} to ${longDay(checkOut)}: ${n} night${n === 1 ? '' : 's'}.`;
    const total = Math.round(room.price * 100 * n) / 100;
    totalOut.textContent = `${n} × ${price(room.price)} = ${price(total)} in total`;
    button.textContent = `Book for ${price(total)}`;
    showQuote(checkIn, checkOut);
  }
}

// The stay priced night by night from the room's rate calendar (what the booking will cost), or
// why the room's rules refuse it; the estimate above stands until it arrives.
let quoting = 0;
async function showQuote(checkIn, checkOut) {
  const asked = (quoting += 1);
  const query = new URLSearchParams({ check_in: checkIn, check_out: checkOut, guests: guests.value || '1' });
  try {
    const quote = await api('GET', `/rooms/${room.id}/quote?${query}`);
    if (asked !== quoting) return;
    const prices = [...new Set(quote.nights.map((night) => night.price))];
    const nights = quote.nights.length;
    totalOut.textContent =
      prices.length === 1
        ? `${nights} × ${price(prices[0])} = ${price(quote.total)} in total`
        : `${quote.nights.map((night) => price(night.price)).join(' + ')} = ${price(quote.total)} in total`;
    button.textContent = `Book for ${price(quote.total)}`;
  } catch (error) {
    if (!(error instanceof ApiError) || asked !== quoting) return;
    if (error.status === 422) totalOut.textContent = error.message;
  }
}

async function loadCalendar() {
  const from = firstOfMonth(state.first);
  try {
    const answer = await api('GET', `/rooms/${room.id}/availability?from=${from}&to=${addMonths(from, MONTHS)}`);
    state.nights = new Map(answer.nights.map((night) => [night.date, night.status]));
    if (state.checkIn && state.checkOut && !bookable(state.checkIn, state.checkOut)) state.checkIn = state.checkOut = null;
    drawCalendar();
  } catch (error) {
    calendar.textContent = `The calendar could not be loaded (${error.message}). Reload the page to try again.`;
  }
}

calendar.addEventListener('click', (event) => {
  const iso = event.target.closest('button[data-date]')?.dataset.date;
  if (!iso) return;
  if (state.checkIn && !state.checkOut) {
    if (iso === state.checkIn) state.checkIn = null;
    else state.checkOut = iso;
  } else {
    state.checkIn = iso;
    state.checkOut = null;
  }
  outcome.hidden = true;
  drawCalendar();
});

function say(kind, ...parts) {
  outcome.className = `outcome ${kind}`;
  outcome.replaceChildren(...parts);
  outcome.hidden = false;
  outcome.focus();
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

// One attempt: the same key and body until it has a final answer, or the guest changes something.
function attemptFor(details) {
  const terms = JSON.stringify([state.checkIn, state.checkOut, guests.value, details.number, details.expiry, details.cvc]);
  if (state.attempt?.terms !== terms) {
    const body = {
      room_id: room.id,
      check_in: state.checkIn,
      check_out: state.checkOut,
      guests: Number(guests.value),
      card_token: tokenize(details),
    };
    state.attempt = { terms, key: crypto.randomUUID(), body };
  }
  return state.attempt;
}

async function send(attempt, mayRefresh = true) {
  try {
    return await api('POST', '/bookings', { body: attempt.body, headers: { 'Idempotency-Key': attempt.key } });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && mayRefresh && (await refreshSession())) {
      return send(attempt, false);
    }
    throw error;
  }
}

function refused(error) {
  const problem = error.problem || {};
  switch (error.status) {
    case 409:
      if (error.kind === 'nights-unavailable') {
        state.attempt = null;
        const nights = (problem.nights || []).map(longDay).join(', ');
        say('error', `Sorry, someone has just booked ${nights}. Nothing was charged. The calendar is up to date: pick other dates.`);
        state.checkIn = state.checkOut = null;
        loadCalendar();
      } else if (error.kind === 'booking-in-progress') {
        say('error', 'This booking is still being processed. Press Book again in a moment: it will not book twice.');
      } else {
        state.attempt = null;
        say('error', `${problem.title}. Nothing was charged: please try again.`);
      }
      return;
    case 402:
      state.attempt = null;
      say('error', 'Your card was declined, and nothing was charged. Try another card.');
      document.getElementById('card-number').focus();
      return;
    case 401:
      showAuth('Your session has ended: sign in again to book. Your dates stay selected.');
      return;
    case 422:
      state.attempt = null;
      say('error', `This booking cannot be made: ${error.message}`);
      return;
    case 0:
    case 503:
      // nothing is lost by retrying: the same key answers the first attempt's outcome
      say('error', `${error.message} Press Book again to retry: you will not be booked or charged twice.`);
      return;
    default:
      state.attempt = null;
      say('error', `Something went wrong (${error.message}). Nothing was booked.`);
  }
}

function showAuth(message) {
  authPanel.hidden = false;
  authPanel.querySelector('.auth-message').textContent = message;
  authPanel.querySelector('input').focus();
}

wireAuth(authPanel, () => {
  authPanel.hidden = true;
  form.requestSubmit(); // carry on with the booking the guest asked for
});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (state.busy) return; // a double click: the first request is under way
  if (!signedIn()) {
    showAuth('Sign in or create an account to book. Your dates stay selected.');
    return;
  }
  let attempt;
  try {
    attempt = attemptFor(card());
  } catch (error) {
    if (!(error instanceof CardError)) throw error;
    say('error', error.message);
    document.getElementById(error.field).focus();
    return;
  }
  state.busy = true;
  button.disabled = true;
  try {
    const { booking } = await send(attempt);
    state.attempt = null;
    state.checkIn = state.checkOut = null;
    say(
      'success',
      `Booked: ${longDay(booking.check_in)} to ${longDay(booking.check_out)}, ${price(Number(booking.total_price))}. `,
      link(`/account/bookings/${booking.id}`, 'See your booking'),
    );
    await loadCalendar();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    refused(error);
  } finally {
    state.busy = false;
    button.disabled = false;
  }
});

// dates and guests carried over from a search (?check_in=&check_out=&guests=), if still bookable
const carried = new URLSearchParams(window.location.search);
const wanted = Number(carried.get('guests'));
if (Number.isInteger(wanted) && wanted >= 1 && wanted <= room.capacity) guests.value = String(wanted);
await loadCalendar();
const [checkIn, checkOut] = [carried.get('check_in'), carried.get('check_out')];
const isDay = (text) => /^\d{4}-\d{2}-\d{2}$/.test(text || '');
if (isDay(checkIn) && isDay(checkOut) && checkIn >= state.first && bookable(checkIn, checkOut)) {
  state.checkIn = checkIn;
  state.checkOut = checkOut;
  drawCalendar();
}
