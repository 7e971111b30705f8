// Search results after the first page load: filters, sort and paging ask the JSON API (the very
// search the server rendered from) and redraw the list; the URL follows (history API), so a link
// can be shared and the back button goes back to the previous results.
import { api } from './api.js';
import { addDays, daysBetween, money, today } from './format.js';

const QUERY_FIELDS = new Set([
  'q', 'city', 'country', 'lat', 'lon', 'radius_km', 'check_in', 'check_out', 'guests',
  'min_price', 'max_price', 'amenities', 'sort', 'page', 'per_page',
]);
const STAY_FIELDS = ['check_in', 'check_out', 'guests'];

const form = document.getElementById('search-form');
const results = document.getElementById('results');
const list = document.getElementById('result-list');
const count = document.getElementById('results-count');
const errorOut = document.getElementById('search-error');
const prev = document.getElementById('prev-page');
const next = document.getElementById('next-page');
const checkIn = document.getElementById('check_in');
const checkOut = document.getElementById('check_out');
let latest = 0; // only the newest request's answer is drawn

function cleaned(pairs) {
  const params = new URLSearchParams();
  for (const [key, value] of pairs) if (QUERY_FIELDS.has(key) && value.trim()) params.set(key, value.trim());
  return params;
}

function formParams() {
  return cleaned(new FormData(form).entries());
}

function fillForm(params) {
  for (const element of form.elements) if (element.name) element.value = params.get(element.name) || '';
  keepDatesInOrder();
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The same markup as templates/_card.html.
function card(room, stay, nights, stayTotal) {
  const locale = `en-${room.location.country}`;
  const item = element('li', 'card');
  item.dataset.roomId = room.id;
  if (room.photos && room.photos.length) {
    const photo = element('img', 'card-photo');
    Object.assign(photo, { src: room.photos[0].thumbnail, alt: '', width: 320, height: 213, loading: 'lazy' });
    item.append(photo);
  }
  const link = element('a', 'card-link');
  link.href = `/rooms/${room.id}` + (stay.toString() ? `?${stay}` : '');
  link.append(element('h3', 'card-title', room.title));
  const place = element('p', 'card-place', `${room.location.city}, ${room.location.country} · sleeps ${room.capacity}`);
  const price = element('p', 'card-price');
  price.append(element('strong', '', money(room.price_per_night, room.currency, locale)), ' a night');
  if (nights) {
    // the stay as the room's rate calendar prices it (the search answers it), else an estimate
    const total = stayTotal ?? Math.round(room.price_per_night * 100 * nights) / 100;
    price.append(' · ', element('span', 'card-total', `${money(total, room.currency, locale)} in total`));
  }
  item.append(link, place, price);
  return item;
}

function pageLink(link, params, page, show) {
  link.hidden = !show;
  const target = new URLSearchParams(params);
  target.set('page', String(page));
  link.href = `/search?${target}`;
}

function draw(page, params) {
  const stay = new URLSearchParams();
  for (const key of STAY_FIELDS) if (params.has(key)) stay.set(key, params.get(key));
  const nights = params.has('check_in') && params.has('check_out') ? daysBetween(params.get('check_in'), params.get('check_out')) : 0;
  const totals = new Map((page.stay_prices || []).map((price) => [price.room_id, price.total]));
  list.replaceChildren(...page.items.map((room) => card(room, stay, nights, totals.get(room.id))));
  count.textContent = `${page.total} room${page.total === 1 ? '' : 's'}`;
  pageLink(prev, params, page.page - 1, page.page > 1);
  pageLink(next, params, page.page + 1, (page.page - 1) * page.per_page + page.items.length < page.total);
}

async function show(params, { push }) {
  const mine = ++latest;
  if (push) history.pushState(null, '', `/search${params.toString() ? `?${params}` : ''}`);
  results.setAttribute('aria-busy', 'true');
  try {
    const page = await api('GET', `/rooms?${params}`);
    if (mine !== latest) return;
    errorOut.hidden = true;
    draw(page, params);
  } catch (error) {
    if (mine !== latest) return;
    errorOut.textContent = error.message;
    errorOut.hidden = false;
    list.replaceChildren();
    count.textContent = 'No results';
    prev.hidden = next.hidden = true;
  } finally {
    if (mine === latest) results.setAttribute('aria-busy', 'false');
  }
}

// A date range: check-out is always after check-in, and neither is in the past.
function keepDatesInOrder() {
  checkIn.min = today();
  if (checkIn.value) {
    checkOut.min = addDays(checkIn.value, 1);
    if (checkOut.value && checkOut.value <= checkIn.value) checkOut.value = addDays(checkIn.value, 1);
  } else {
    checkOut.min = addDays(today(), 1);
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  show(formParams(), { push: true });
});

// a choice that is complete on its own (a date, the sort, the guests) searches at once
form.addEventListener('change', (event) => {
  if (event.target === checkIn) keepDatesInOrder();
  if (event.target.type === 'search' || event.target.type === 'text') return;
  const params = formParams();
  if (params.has('check_in') !== params.has('check_out')) return; // waiting for the other date
  show(params, { push: true });
});

for (const link of [prev, next]) {
  link.addEventListener('click', (event) => {
    event.preventDefault();
    show(cleaned(new URL(link.href).searchParams.entries()), { push: true }).then(() => count.focus());
  });
}

window.addEventListener('popstate', () => {
  const params = cleaned(new URLSearchParams(window.location.search).entries());
  fillForm(params);
  show(params, { push: false });
});

count.tabIndex = -1;
keepDatesInOrder();
