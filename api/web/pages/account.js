// Registration, email verification, logging in, password reset, profile.

import { api, get, post } from '../api.js';
import { card, form, h, notice } from '../dom.js';
import { when } from '../format.js';
import { flash, loadUser, navigate, session, setUser } from '../state.js';
import { webhooksCard } from './webhooks.js';

function narrow(view, title, lead) {
  view.classList.add('narrow');
  view.append(h('h1', { text: title }), lead ? h('p', { class: 'lead', text: lead }) : null);
}

export async function registerPage(view) {
  narrow(view, 'Create an account', 'Wallets in dollars, euros, tenge and crypto; trading, bets and price alerts.');
  const f = form({
    name: 'register',
    submit: 'Create account',
    fields: [
      { name: 'username', label: 'Username', autocomplete: 'username', hint: '3–32 characters: a–z, 0–9 and _' },
      { name: 'email', label: 'Email', type: 'email', autocomplete: 'email' },
      { name: 'password', label: 'Password', type: 'password', autocomplete: 'new-password', hint: 'At least 8 characters' },
    ],
    onSubmit: async (values) => {
      const user = await post('/auth/register', values);
      flash('ok', `Account created. We emailed a six-digit code to ${user.email}.`);
      navigate(`/verify?email=${encodeURIComponent(user.email)}&login=${encodeURIComponent(user.username)}`);
    },
  });
  view.append(card(null, f.el), h('p', { class: 'muted' }, 'Already registered? ', h('a', { href: '#/login', text: 'Log in' })));
}

export async function verifyPage(view, { query }) {
  narrow(view, 'Verify your email', 'Enter the six-digit code from the email we sent you. Codes expire after 15 minutes.');
  const email = query.get('email') || session.user?.email || '';
  const f = form({
    name: 'verify',
    submit: 'Verify',
    fields: [
      { name: 'email', label: 'Email', type: 'email', value: email, autocomplete: 'email' },
      { name: 'code', label: 'Code', inputmode: 'numeric', autocomplete: 'one-time-code', placeholder: '123456' },
    ],
    onSubmit: async (values) => {
      await post('/auth/verify-email', values);
      if (session.user) {
        await loadUser();
        flash('ok', 'Your email is verified.');
        navigate('/wallets');
      } else {
        flash('ok', 'Your email is verified. Log in to continue.');
        navigate(`/login?login=${encodeURIComponent(query.get('login') || values.email)}`);
      }
    },
  });
  const resendStatus = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const resend = h('button', {
    type: 'button',
    class: 'link',
    text: 'Send a new code',
    onclick: async () => {
      const address = f.values().email;
      resend.disabled = true;
      try {
        await post('/auth/verify-email/resend', { email: address });
        resendStatus.replaceChildren(notice('ok', `If ${address} needs a code, a new one is on its way.`));
      } catch (error) {
        resendStatus.replaceChildren(notice('error', error.detail || String(error)));
      } finally {
        resend.disabled = false;
      }
    },
  });
  view.append(card(null, f.el, h('p', { class: 'muted' }, 'No email? ', resend), resendStatus));
  f.inputs.get(email ? 'code' : 'email').focus();
}

export async function loginPage(view, { query }) {
  narrow(view, 'Log in');
  if (session.user) {
    view.append(notice('info', `You are logged in as ${session.user.username}.`));
  }
  const f = form({
    name: 'login',
    submit: 'Log in',
    fields: [
      { name: 'login', label: 'Username or email', autocomplete: 'username', value: query.get('login') || '' },
      { name: 'password', label: 'Password', type: 'password', autocomplete: 'current-password' },
    ],
    onSubmit: async (values) => {
      await post('/auth/login', values);
      await loadUser();
      const next = query.get('next');
      navigate(next && next.startsWith('/') ? next : '/wallets');
    },
  });
  view.append(
    card(null, f.el),
    h('p', { class: 'muted' }, 'New here? ', h('a', { href: '#/register', text: 'Create an account' }), ' · ', h('a', { href: '#/reset', text: 'Forgot your password?' })),
  );
  f.inputs.get(query.get('login') ? 'password' : 'login').focus();
}

export async function resetPage(view, { query }) {
  narrow(view, 'Reset your password', 'We email you a code; enter it with a new password. Every session is signed out.');
  const confirm = form({
    name: 'reset-confirm',
    submit: 'Set new password',
    fields: [
      { name: 'email', label: 'Email', type: 'email', value: query.get('email') || '', autocomplete: 'email' },
      { name: 'code', label: 'Code from the email', inputmode: 'numeric', autocomplete: 'one-time-code' },
      { name: 'new_password', label: 'New password', type: 'password', autocomplete: 'new-password' },
    ],
    onSubmit: async (values) => {
      await post('/auth/password-reset/confirm', values);
      setUser(null);
      flash('ok', 'Your password is changed. Log in with the new one.');
      navigate(`/login?login=${encodeURIComponent(values.email)}`);
    },
  });
  const request = form({
    name: 'reset-request',
    submit: 'Email me a code',
    fields: [{ name: 'email', label: 'Email', type: 'email', value: query.get('email') || '', autocomplete: 'email' }],
    onSubmit: async (values) => {
      await post('/auth/password-reset', values);
      confirm.inputs.get('email').value = values.email;
      return `If ${values.email} has an account, a code is on its way.`;
    },
  });
  view.append(card('1. Ask for a code', request.el), card('2. Choose a new password', confirm.el));
}

export async function profilePage(view) {
  const user = await get('/me');
  setUser(user);
  view.append(h('h1', { text: 'Profile' }));
  const details = h(
    'dl',
    { class: 'facts' },
    h('dt', { text: 'Username' }),
    h('dd', { text: user.username }),
    h('dt', { text: 'Email' }),
    h('dd', {}, user.email, ' ', user.email_verified ? h('span', { class: 'badge ok', text: 'verified' }) : h('a', { class: 'badge warn', href: `#/verify?email=${encodeURIComponent(user.email)}`, text: 'not verified: verify' })),
    h('dt', { text: 'Role' }),
    h('dd', { text: user.role === 'admin' ? 'Administrator' : 'User' }),
    h('dt', { text: 'Member since' }),
    h('dd', { text: when(user.created_at) }),
  );
  const edit = form({
    name: 'profile',
    submit: 'Save',
    fields: [
      { name: 'first_name', label: 'First name', value: user.first_name || '', autocomplete: 'given-name' },
      { name: 'last_name', label: 'Last name', value: user.last_name || '', autocomplete: 'family-name' },
      { name: 'email', label: 'Email', type: 'email', value: user.email, autocomplete: 'email', hint: 'A new address must be verified again; the old one is told of the change.' },
      { name: 'current_password', label: 'Current password', type: 'password', autocomplete: 'current-password', hint: 'Needed only to change the email address.' },
    ],
    onSubmit: async (values) => {
      const current = session.user;
      const changes = {};
      for (const field of ['first_name', 'last_name']) {
        if (values[field] !== (current[field] || '')) changes[field] = values[field] === '' ? null : values[field];
      }
      if (values.email.toLowerCase() !== current.email.toLowerCase()) {
        changes.email = values.email;
        if (values.current_password) changes.current_password = values.current_password;
      }
      if (!Object.keys(changes).length) return 'Nothing to change.';
      const updated = await api('PATCH', '/me', changes);
      setUser(updated);
      if (changes.email) {
        flash('ok', `Saved. We emailed a code to ${updated.email}.`);
        navigate(`/verify?email=${encodeURIComponent(updated.email)}`);
        return undefined;
      }
      return 'Saved.';
    },
  });
  const password = form({
    name: 'password',
    submit: 'Change password',
    fields: [
      { name: 'current_password', label: 'Current password', type: 'password', autocomplete: 'current-password' },
      { name: 'new_password', label: 'New password', type: 'password', autocomplete: 'new-password', hint: 'At least 8 characters' },
      { name: 'new_password_confirm', label: 'New password again', type: 'password', autocomplete: 'new-password' },
    ],
    onSubmit: async (values) => {
      await post('/me/password', values);
      for (const input of password.inputs.values()) input.value = '';
      return 'Password changed. Your other sessions were signed out.';
    },
  });
  view.append(h('div', { class: 'grid two' }, card('Account', details), card('Your details', edit.el)), h('div', { class: 'grid two' }, card('Password', password.el)), webhooksCard());
}
