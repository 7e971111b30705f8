// Simulated card tokenisation, in the page: the card's number, expiry and CVC are checked here and
// turned into a token (tok_...); only the token is sent to roombook, never the number. A real
// payment provider's script does the same with its own servers.

export const DECLINED_TEST_CARD = '4000000000000002'; // tokenised as tok_decline, which is declined

export class CardError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field; // the id of the input to fix
  }
}

export function luhnValid(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d > 4 ? d * 2 - 9 : d * 2;
    total += d;
  }
  return total % 10 === 0;
}

function brandOf(digits) {
  if (digits.startsWith('4')) return 'visa';
  if (/^5[1-5]/.test(digits) || /^2[2-7]/.test(digits)) return 'mastercard';
  if (/^3[47]/.test(digits)) return 'amex';
  return 'card';
}

function randomLetters(count) {
  const bytes = crypto.getRandomValues(new Uint8Array(count));
  return Array.from(bytes, (b) => String.fromCharCode(97 + (b % 26))).join(''); // letters: never card-like
}

export function tokenize({ number, expiry, cvc }, now = new Date()) {
  const digits = number.replace(/[\s-]/g, '');
  if (!/^\d{13,19}$/.test(digits)) throw new CardError('card-number', 'Enter the card number: 13 to 19 digits.');
  if (!luhnValid(digits)) throw new CardError('card-number', 'This card number is not valid: check the digits.');
  const exp = /^(\d{2})\s*\/?\s*(\d{2})$/.exec(expiry.trim());
  const month = exp ? Number(exp[1]) : 0;
  if (!exp || month < 1 || month > 12) throw new CardError('card-expiry', 'Enter the expiry date as MM/YY.');
  const endOfMonth = new Date(2000 + Number(exp[2]), month, 1);
  if (endOfMonth <= now) throw new CardError('card-expiry', 'This card has expired.');
  if (!/^\d{3,4}$/.test(cvc.trim())) throw new CardError('card-cvc', 'Enter the 3 or 4 digit security code.');
  if (digits === DECLINED_TEST_CARD) return 'tok_decline';
  return `tok_${brandOf(digits)}_${randomLetters(20)}`;
}
