// Prices and dates in the room's locale (en-DE, en-US, ...), as the server's pages write them.
// Dates are ISO days (YYYY-MM-DD) handled in UTC, so no time zone shifts a night.

const DAY_MS = 86400000;

export function money(amount, currency, locale) {
  return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(amount);
}

export function toDate(iso) {
  return new Date(iso + 'T00:00:00Z');
}

export function isoOf(date) {
  return date.toISOString().slice(0, 10);
}

export function addDays(iso, days) {
  return isoOf(new Date(toDate(iso).getTime() + days * DAY_MS));
}

export function daysBetween(from, to) {
  return Math.round((toDate(to) - toDate(from)) / DAY_MS);
}

// today in the visitor's own calendar
export function today() {
  const now = new Date();
  return isoOf(new Date(Date.UTC(now.getFullYear(), now.getMonth(), now.getDate())));
}

export function firstOfMonth(iso) {
  return iso.slice(0, 8) + '01';
}

export function addMonths(iso, months) {
  const d = toDate(iso);
  return isoOf(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1)));
}

export function dayLabel(iso, locale, options = { dateStyle: 'medium' }) {
  return new Intl.DateTimeFormat(locale, { ...options, timeZone: 'UTC' }).format(toDate(iso));
}
